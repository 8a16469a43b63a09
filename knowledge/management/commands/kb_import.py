"""manage.py kb_import PATH [--replace] [--if-empty]: see knowledge.importer."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from knowledge.importer import ImportError_, knowledge_import
from knowledge.models import Article


class Command(BaseCommand):
    help = (
        "Import knowledge articles from a folder of Markdown files (front matter: title, language, tags, url, site, "
        "faq) and CSV files with the same columns (plus body); re-imports update by slug."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="A folder, a .md file or a .csv file.")
        parser.add_argument(
            "--replace", action="store_true", help="Unpublish the articles that are not in PATH (none if one fails)."
        )
        parser.add_argument("--if-empty", action="store_true", help="Do nothing when any article exists already.")

    def handle(self, *args, path, replace, if_empty, **options):
        if if_empty and Article.objects.exists():
            self.stdout.write("The knowledge base has articles already: nothing imported.")
            return
        try:
            report = knowledge_import(Path(path), replace=replace)
        except ImportError_ as exc:
            raise CommandError(str(exc)) from exc
        for source, why in report.refused:
            self.stderr.write(f"refused {source}: {why}")
        for slug in report.unpublished:
            self.stdout.write(f"unpublished {slug}")
        self.stdout.write(report.summary())
        if report.refused:
            raise CommandError(f"{len(report.refused)} file(s) or row(s) refused")
