"""Attachments as files: what a file is (by its bytes, never by its name or the browser's word), whether it may be
kept, its size, its display name and, for an image, a thumbnail.

The allow-list is small on purpose: images a browser shows (PNG, JPEG, GIF, WebP; each must also decode with
Pillow, and a decompression bomb is refused before it is decoded), PDF, and plain UTF-8 text. Everything else, a
renamed program or an SVG (which can carry script) included, is refused. The original bytes are kept as they came;
nothing is stripped or re-encoded. Storing, and the message the files go with, are chat.services.attachments'.
"""

import codecs
import io
import os
import re
import tempfile
import unicodedata
import warnings
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings
from PIL import Image, ImageOps, UnidentifiedImageError


class FileRefused(ValueError):
    """A file that is not kept: `code` says why (file_type_not_allowed, file_too_large, ...), the text is for people."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


# The largest image accepted, in pixels (about 8000 x 5000): a decoded image takes 3-4 bytes a pixel, so a small
# file claiming huge dimensions (a decompression bomb) is refused before Pillow decodes it.
MAX_IMAGE_PIXELS = 40_000_000
THUMBNAIL_MAX_PX = 320
# How much of a file stays in memory while it is read; the rest goes to a temporary file.
_SPOOL_BYTES = 1024 * 1024
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class FileType:
    content_type: str
    label: str
    extensions: tuple[str, ...]  # the first is added to a display name whose extension says otherwise
    pillow_format: str = ""  # what Pillow must recognise the bytes as (images)
    # Shown in the browser rather than downloaded: images. A PDF is downloaded: Chrome will not run its PDF viewer in a
    # document under the sandboxing CSP that files are served with ("This page has been blocked by Chrome").
    inline: bool = False


PNG = FileType("image/png", "PNG image", (".png",), "PNG", inline=True)
JPEG = FileType("image/jpeg", "JPEG image", (".jpg", ".jpeg", ".jfif"), "JPEG", inline=True)
GIF = FileType("image/gif", "GIF image", (".gif",), "GIF", inline=True)
WEBP = FileType("image/webp", "WebP image", (".webp",), "WEBP", inline=True)
PDF = FileType("application/pdf", "PDF document", (".pdf",))
TEXT = FileType("text/plain", "text file", (".txt", ".log", ".csv"))
ALLOWED = (PNG, JPEG, GIF, WEBP, PDF, TEXT)
BY_CONTENT_TYPE = {kind.content_type: kind for kind in ALLOWED}
ALLOWED_DESCRIPTION = "images (PNG, JPEG, GIF, WebP), PDF documents and plain text files (.txt, .log, .csv)"

# Signatures of common files that are not allowed, only to name them in the refusal.
_KNOWN_OTHERS = (
    (b"MZ", "a Windows program"),
    (b"\x7fELF", "a program"),
    (b"PK\x03\x04", "a ZIP archive or Office document"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\xd0\xcf\x11\xe0", "an Office document"),
    (b"#!", "a script"),
    (b"BM", "a BMP image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
)


@dataclass
class CheckedFile:
    """An upload that passed every check, read into a temporary file (rewound), ready to store."""

    file: BinaryIO
    name: str
    kind: FileType
    size: int
    width: int | None = None
    height: int | None = None
    thumbnail: bytes | None = None  # a JPEG of at most THUMBNAIL_MAX_PX a side, for images

    @property
    def content_type(self) -> str:
        return self.kind.content_type

    def close(self) -> None:
        self.file.close()


def refused_type(what: str) -> FileRefused:
    return FileRefused(
        "file_type_not_allowed", f"This file type is not allowed: {what}. Allowed: {ALLOWED_DESCRIPTION}."
    )


def too_large(limit: int) -> FileRefused:
    return FileRefused("file_too_large", f"The file is too large: the limit is {size_text(limit)}.")


def size_text(size: int) -> str:
    """A byte count as people read it: 10 MB, 512 KB, 900 bytes."""
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.3g} MB"
    return f"{size / 1024:.3g} KB" if size >= 1024 else f"{size} bytes"


def read_limited(upload, limit: int) -> tuple[BinaryIO, int]:
    """The upload's bytes in a temporary file (rewound) and their count; FileRefused("file_too_large") as soon
    as more than `limit` bytes have been read, so a huge upload is never held whole."""
    declared = getattr(upload, "size", None)
    if isinstance(declared, int) and declared > limit:
        raise too_large(limit)
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)
    size = 0
    try:
        chunks = upload.chunks(_CHUNK) if hasattr(upload, "chunks") else iter(lambda: upload.read(_CHUNK), b"")
        for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool, size


def sniff(head: bytes) -> FileType | None:
    """The allowed type these first bytes begin, or None (text is told apart later, by decoding it all)."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head.startswith(b"%PDF-"):
        return PDF
    return None


def _other_name(head: bytes) -> str:
    for signature, what in _KNOWN_OTHERS:
        if head.startswith(signature):
            return what
    stripped = head.lstrip().lower()
    if stripped.startswith((b"<svg", b"<?xml")):
        return "an SVG or XML file"
    if stripped.startswith((b"<!doctype html", b"<html")):
        return "an HTML page"
    return "a binary file"


def _is_text(file: BinaryIO) -> bool:
    """Whether the whole file is UTF-8 text without a NUL (read in chunks)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    try:
        while chunk := file.read(_CHUNK):
            if b"\x00" in chunk:
                return False
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    finally:
        file.seek(0)
    return True


def _image_checked(file: BinaryIO, kind: FileType) -> tuple[int, int, bytes]:
    """(width, height, thumbnail JPEG) of an image that Pillow decodes as `kind`; FileRefused otherwise."""
    invalid = FileRefused("file_invalid", f"This {kind.label} could not be read: it is damaged or not really one.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(file, formats=[kind.pillow_format]) as image:
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS or width < 1 or height < 1:
                    raise FileRefused(
                        "image_too_large",
                        f"The image is {width} x {height} pixels; at most 40 megapixels are accepted.",
                    )
                image.draft("RGB", (THUMBNAIL_MAX_PX * 2, THUMBNAIL_MAX_PX * 2))  # JPEG: decode at a reduced scale
                image.seek(0)
                image.load()  # decodes every byte of the first frame: a damaged file fails here
                oriented = ImageOps.exif_transpose(image)
                if oriented.size != image.size:  # rotated by its EXIF orientation: width and height swap
                    width, height = height, width
                thumbnail = _thumbnail(oriented)
    except FileRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise FileRefused("image_too_large", "The image has too many pixels to be accepted.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, MemoryError):
        raise invalid from None
    finally:
        file.seek(0)
    return width, height, thumbnail


def _thumbnail(image: Image.Image) -> bytes:
    """A JPEG of at most THUMBNAIL_MAX_PX a side; transparency is laid on white."""
    image = image.copy()
    image.thumbnail((THUMBNAIL_MAX_PX, THUMBNAIL_MAX_PX))
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        image = flat
    elif image.mode != "RGB":
        image = image.convert("RGB")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=82, optimize=True)
    return out.getvalue()


_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f"*:<>?|\\/]')


def display_name(raw, kind: FileType) -> str:
    """The sender's file name as shown and offered for download: its last path part, control characters and
    characters no file system takes dropped, at most 120 characters, and ending in an extension of what the file
    is (a PDF named "scan.png" is shown as "scan.pdf"; "notes.md" holding text as "notes.md.txt")."""
    name = raw if isinstance(raw, str) else ""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_NAME.sub("", name)
    name = re.sub(r"\s+", " ", name).strip().strip(".").strip()
    stem, ext = os.path.splitext(name)
    if ext.lower() not in kind.extensions:
        known = {e for other in ALLOWED for e in other.extensions}
        if ext.lower() in known:  # another allowed type's extension: misleading, replaced
            name = stem
        ext = kind.extensions[0]
        stem = name
    stem = stem[: 120 - len(ext)].strip() or "file"
    return stem + ext.lower()


def file_check(upload, *, name: str | None = None) -> CheckedFile:
    """Read and check an upload (a Django UploadedFile, or any object with read()); FileRefused saying why not.

    Codes: file_missing, file_empty, file_too_large (over ATTACHMENT_MAX_BYTES), file_type_not_allowed,
    file_invalid (an image Pillow cannot decode), image_too_large (too many pixels).
    """
    if upload is None or not (hasattr(upload, "chunks") or hasattr(upload, "read")):
        raise FileRefused("file_missing", "Choose a file to send.")
    limit = settings.ATTACHMENT_MAX_BYTES
    file, size = read_limited(upload, limit)
    try:
        if size == 0:
            raise FileRefused("file_empty", "The file is empty.")
        head = file.read(64)
        file.seek(0)
        kind = sniff(head)
        if kind is None:
            if not _is_text(file):
                raise refused_type(_other_name(head))
            kind = TEXT
        checked = CheckedFile(
            file=file, name=display_name(name or getattr(upload, "name", ""), kind), kind=kind, size=size
        )
        if kind.pillow_format:
            checked.width, checked.height, checked.thumbnail = _image_checked(file, kind)
        return checked
    except BaseException:
        file.close()
        raise
