"""`kb_import`: a folder of Markdown files with front matter, and CSV files with the same columns, into articles.

Every article is validated and saved on its own (a broken file is refused with its reason, the others land), and
re-importing updates by slug. With `replace`, the published knowledge base becomes exactly the import's articles,
unless a file was refused: then nothing is unpublished, so one bad file never takes articles offline.
"""

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from django.utils.text import slugify

from knowledge import services
from knowledge.services import ArticleInput, ArticleInvalid

FRONT_MATTER_KEYS = {"title", "language", "tags", "url", "site", "slug", "faq", "published"}
CSV_COLUMNS = {"title", "language", "body"}  # required; tags, url, site, slug, faq, published are optional
MAX_FILE_BYTES = 2_000_000


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    unpublished: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (file or file:row, why)
    replace_skipped: bool = False

    def summary(self) -> str:
        line = (
            f"{len(self.created)} created, {len(self.updated)} updated, {len(self.unchanged)} unchanged, "
            f"{len(self.unpublished)} unpublished, {len(self.refused)} refused"
        )
        return line + (" (nothing unpublished because of the refused files)" if self.replace_skipped else "")


class ImportError_(ValueError):
    """The path itself cannot be imported (missing, or neither a folder, a Markdown file nor a CSV file)."""


def _bool(value: str, name: str) -> bool:
    value = value.strip().lower()
    if value in ("true", "yes", "1", "on"):
        return True
    if value in ("false", "no", "0", "off", ""):
        return False
    raise ArticleInvalid(f"{name} must be true or false, not {value!r}")


def _tags(value: str) -> list[str]:
    return [t.strip().strip("'\"") for t in value.strip().strip("[]").replace("，", ",").split(",") if t.strip()]


def _article(values: dict[str, str], body: str, default_slug: str) -> ArticleInput:
    slug = values.get("slug", "").strip() or default_slug
    if not slug:
        raise ArticleInvalid("no slug: give a slug (a file name or a slug column) in Latin letters")
    if not values.get("title", "").strip():
        raise ArticleInvalid("title is missing")
    if not values.get("language", "").strip():
        raise ArticleInvalid("language is missing")
    return ArticleInput(
        slug=slug,
        title=values["title"].strip(),
        body=body,
        language=values["language"].strip().lower(),
        tags=_tags(values.get("tags", "")),
        site=values.get("site", "").strip(),
        url=values.get("url", "").strip(),
        is_faq=_bool(values.get("faq", ""), "faq"),
        published=_bool(values.get("published", "true") or "true", "published"),
    )


def markdown_parse(text: str, *, default_slug: str) -> ArticleInput:
    """A Markdown file: front matter between `---` lines (`key: value`), then the body."""
    text = text.lstrip("\ufeff")
    lines = text.replace("\r\n", "\n").split("\n")
    if not lines or lines[0].strip() != "---":
        raise ArticleInvalid("no front matter: the file must start with a --- line, then title:, language:, ...")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise ArticleInvalid("the front matter is not closed by a --- line") from None
    values = {}
    for number, line in enumerate(lines[1:end], start=2):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if not sep or key not in FRONT_MATTER_KEYS:
            raise ArticleInvalid(f"front matter line {number}: expected one of {', '.join(sorted(FRONT_MATTER_KEYS))}")
        values[key] = value.strip().strip("'\"") if key != "tags" else value
    return _article(values, "\n".join(lines[end + 1 :]).strip(), default_slug)


def csv_parse(text: str) -> list[tuple[int, ArticleInput | ArticleInvalid]]:
    """A CSV file's rows (a header row names the columns), each an article or the reason it is refused."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    columns = {c.strip().lower() for c in reader.fieldnames or []}
    if missing := CSV_COLUMNS - columns:
        raise ArticleInvalid(f"the header lacks the column(s) {', '.join(sorted(missing))}")
    rows = []
    for number, row in enumerate(reader, start=2):
        values = {(k or "").strip().lower(): (v or "") for k, v in row.items()}
        try:
            rows.append((number, _article(values, values.get("body", "").strip(), slugify(values.get("title", "")))))
        except ArticleInvalid as exc:
            rows.append((number, exc))
    return rows


def _read(path: Path) -> str:
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ArticleInvalid(f"larger than {MAX_FILE_BYTES // 1_000_000} MB")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ArticleInvalid("not UTF-8 text") from None


def _inputs(root: Path) -> list[tuple[str, ArticleInput | ArticleInvalid]]:
    if not root.exists():
        raise ImportError_(f"{root} does not exist")
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    found = []
    for path in files:
        name = str(path.relative_to(root.parent if root.is_file() else root))
        suffix = path.suffix.lower()
        if suffix not in (".md", ".markdown", ".csv"):
            if root.is_file():
                raise ImportError_(f"{root} is neither a Markdown (.md) nor a CSV (.csv) file")
            continue
        try:
            text = _read(path)
            if suffix == ".csv":
                found.extend((f"{name}:{row}", item) for row, item in csv_parse(text))
            else:
                found.append((name, markdown_parse(text, default_slug=path.stem)))
        except ArticleInvalid as exc:
            found.append((name, exc))
    return found


def knowledge_import(root: Path, *, replace: bool = False) -> ImportReport:
    """Import a folder (or one file); see the module's docstring."""
    report = ImportReport()
    seen: dict[str, str] = {}
    inputs = _inputs(Path(root))
    # Every title and tag first, so that all the import's passages are segmented with the same words.
    services.vocabulary_learn(
        [w for _, item in inputs if isinstance(item, ArticleInput) for w in (item.title, *item.tags)]
    )
    for source, item in inputs:
        if isinstance(item, ArticleInvalid):
            report.refused.append((source, str(item)))
            continue
        if item.slug in seen:
            report.refused.append((source, f"slug {item.slug!r} is already used by {seen[item.slug]}"))
            continue
        try:
            article, outcome = services.article_save(data=item, source="import")
        except ArticleInvalid as exc:
            report.refused.append((source, str(exc)))
            continue
        seen[item.slug] = source
        getattr(report, outcome).append(article.slug)
    if replace:
        if report.refused:
            report.replace_skipped = True
        else:
            report.unpublished = services.articles_unpublish_except(slugs=set(seen))
    return report
