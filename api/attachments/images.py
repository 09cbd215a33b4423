"""Photos checked and cleaned with Pillow: the format sniffed from the bytes, the pixel count bounded
before decoding, the whole image decoded (a truncated file fails here), then re-encoded without any
metadata. What the metadata said that we keep — the EXIF GPS position and the time the photo was
taken — is returned as data, never as bytes in the stored file.

Pure bytes in, bytes and numbers out: no HTTP, no database, no files.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

from PIL import ExifTags, Image, ImageCms, ImageOps

THUMBNAIL_SIDE_PX = 320
JPEG_QUALITY = 90
WEBP_QUALITY = 90
THUMBNAIL_QUALITY = 80
THUMBNAIL_MEDIA_TYPE = "image/webp"
# Phones write local time without an offset when they write none; wangge serves China (UTC+8,
# no daylight saving), so that is what a bare DateTimeOriginal means.
DEFAULT_PHOTO_OFFSET = timezone(timedelta(hours=8))
WGS84_DATUMS = {"", "WGS-84", "WGS84", "WGS 84"}


@dataclass(frozen=True)
class Format:
    pillow: str  # Pillow's format name, the only decoder allowed to open the bytes
    media_type: str
    extension: str


FORMATS = {
    "JPEG": Format("JPEG", "image/jpeg", "jpg"),
    "PNG": Format("PNG", "image/png", "png"),
    "WEBP": Format("WEBP", "image/webp", "webp"),
}
EXTENSIONS = {f.media_type: f.extension for f in FORMATS.values()}
EXTENSIONS[THUMBNAIL_MEDIA_TYPE] = "webp"


class ImageRefused(ValueError):
    """The bytes are not a photo wangge keeps; `code` is stable, the message is for people."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class CleanImage:
    content: bytes  # re-encoded, no metadata
    format: Format
    width: int
    height: int
    thumbnail: bytes  # WebP, at most THUMBNAIL_SIDE_PX on its long side
    lon: float | None  # EXIF GPS (WGS84), when the photo carried a usable position
    lat: float | None
    taken_at: datetime | None  # EXIF DateTimeOriginal, aware

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def thumbnail_sha256(self) -> str:
        return hashlib.sha256(self.thumbnail).hexdigest()


def sniff(data: bytes) -> Format:
    """The format the first bytes announce; anything but JPEG, PNG and WebP is refused by name."""
    if data.startswith(b"\xff\xd8\xff"):
        return FORMATS["JPEG"]
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return FORMATS["PNG"]
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return FORMATS["WEBP"]
    if data[4:8] == b"ftyp" and data[8:12] in (
        b"heic",
        b"heix",
        b"hevc",
        b"heim",
        b"mif1",
        b"msf1",
    ):
        raise ImageRefused(
            "暂不支持 HEIC/HEIF 格式的照片：请在手机相机设置中选择“兼容性最佳”（JPEG），"
            "或先转换为 JPEG 后上传",
            "heic_unsupported",
        )
    named = _other_format(data)
    if named:
        raise ImageRefused(
            f"不支持 {named} 文件：照片只接受 JPEG、PNG 或 WebP", "unsupported_format"
        )
    raise ImageRefused("不是可识别的图片：照片只接受 JPEG、PNG 或 WebP", "unsupported_format")


def _other_format(data: bytes) -> str | None:
    head = data[:512].lstrip().lower()
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if data.startswith(b"%PDF"):
        return "PDF"
    if head.startswith((b"<?xml", b"<svg", b"<!doctype svg")) and b"<svg" in data[:4096].lower():
        return "SVG"
    if data[4:8] == b"ftyp" and data[8:12] == b"avif":
        return "AVIF"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF"
    if data.startswith(b"BM"):
        return "BMP"
    return None


def clean(data: bytes, max_pixels: int) -> CleanImage:
    """Decode, bound, orient and re-encode a photo; its EXIF position and time as data."""
    if not data:
        raise ImageRefused("文件为空", "empty_file")
    kind = sniff(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return _clean(data, kind, max_pixels)
    except ImageRefused:
        raise
    except Image.DecompressionBombError as error:
        raise _too_many_pixels(max_pixels) from error
    except Exception as error:  # a decoder's complaint about hostile bytes, whatever its type
        raise ImageRefused(
            f"无法读取的 {kind.pillow} 图片（文件损坏或不完整）", "unreadable_image"
        ) from error


def _too_many_pixels(max_pixels: int) -> ImageRefused:
    return ImageRefused(f"图片像素过多（上限 {max_pixels} 像素）", "too_many_pixels")


def _clean(data: bytes, kind: Format, max_pixels: int) -> CleanImage:
    with Image.open(io.BytesIO(data), formats=[kind.pillow]) as probe:
        width, height = probe.size
        # The header's size, before any pixel is decoded: a bomb is refused unopened.
        if width * height > max_pixels:
            raise _too_many_pixels(max_pixels)
        probe.verify()
    with Image.open(io.BytesIO(data), formats=[kind.pillow]) as image:
        image.load()  # the first frame only; a truncated file raises here
        exif = image.getexif()
        lon, lat = gps_position(exif)
        taken_at = taken_time(exif)
        icc_profile = image.info.get("icc_profile")
        transparency = image.info.get("transparency")
        ImageOps.exif_transpose(image, in_place=True)  # no copy when the photo is upright
        pixels = _in_srgb(image, icc_profile)
    thumbnail = _thumbnail(pixels)
    content = _encode(pixels, kind, transparency)
    return CleanImage(
        content=content,
        format=kind,
        width=pixels.width,
        height=pixels.height,
        thumbnail=thumbnail,
        lon=lon,
        lat=lat,
        taken_at=taken_at,
    )


def _in_srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """Pixels converted to sRGB when the photo carried a colour profile (the profile is metadata
    and is dropped, so its colours must be baked in); CMYK becomes RGB."""
    if icc_profile and image.mode in ("RGB", "RGBA", "CMYK"):
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
            target = ImageCms.createProfile("sRGB")
            mode = "RGBA" if image.mode == "RGBA" else "RGB"
            converted = ImageCms.profileToProfile(image, source, target, outputMode=mode)
            if converted is not None:
                return converted
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # an unusable profile: the pixels as they are
    if image.mode == "CMYK":
        return image.convert("RGB")
    return image


def _encode(image: Image.Image, kind: Format, transparency: Any) -> bytes:
    """The image in its own format with no metadata at all (no EXIF, XMP, ICC, comments, text)."""
    image = _mode_for(image, kind, transparency)
    image.info = {}  # encoders read comments and profiles from here: nothing carries over
    options: dict[str, Any] = {}
    if kind.pillow == "JPEG":
        options = {"quality": JPEG_QUALITY}
    elif kind.pillow == "WEBP":
        options = {"quality": WEBP_QUALITY, "method": 4}
    elif image.mode == "P" and transparency is not None:
        options = {"transparency": transparency}
    buffer = io.BytesIO()
    image.save(buffer, format=kind.pillow, **options)
    return buffer.getvalue()


def _mode_for(image: Image.Image, kind: Format, transparency: Any) -> Image.Image:
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        # 16-bit and float greyscale: scaled to 8 bits, which every encoder and browser takes.
        image = image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    if kind.pillow == "JPEG":
        return image if image.mode in ("L", "RGB") else image.convert("RGB")
    if kind.pillow == "WEBP":
        alpha = image.mode in ("RGBA", "LA", "PA") or transparency is not None
        wanted = "RGBA" if alpha else "RGB"
        return image if image.mode == wanted else image.convert(wanted)
    if image.mode in ("1", "L", "LA", "RGB", "RGBA") or (image.mode == "P"):
        return image
    return image.convert("RGBA")


def _thumbnail(image: Image.Image) -> bytes:
    alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    small = image.convert("RGBA" if alpha or image.mode == "P" else "RGB")
    small.thumbnail((THUMBNAIL_SIDE_PX, THUMBNAIL_SIDE_PX), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    small.save(buffer, format="WEBP", quality=THUMBNAIL_QUALITY)
    return buffer.getvalue()


def _degrees(value: Any) -> float | None:
    """(degrees, minutes, seconds) rationals as decimal degrees; None when unusable."""
    try:
        degrees, minutes, seconds = (float(part) for part in value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    total = degrees + minutes / 60 + seconds / 3600
    return total if math.isfinite(total) else None


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).strip("\x00 ").upper() if value is not None else ""


def gps_position(exif: Image.Exif) -> tuple[float | None, float | None]:
    """The EXIF GPS position as WGS84 (lon, lat) — EXIF's own datum — or (None, None) when it is
    missing, malformed, out of range, in another datum, or the 0,0 some cameras write without a fix."""
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    if not gps:
        return None, None
    lat = _degrees(gps.get(ExifTags.GPS.GPSLatitude))
    lon = _degrees(gps.get(ExifTags.GPS.GPSLongitude))
    if lat is None or lon is None:
        return None, None
    if _text(gps.get(ExifTags.GPS.GPSLatitudeRef)) == "S":
        lat = -lat
    if _text(gps.get(ExifTags.GPS.GPSLongitudeRef)) == "W":
        lon = -lon
    datum = _text(gps.get(ExifTags.GPS.GPSMapDatum))
    if datum not in WGS84_DATUMS or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None, None
    if lat == 0 and lon == 0:
        return None, None
    return lon, lat


def taken_time(exif: Image.Exif) -> datetime | None:
    """EXIF DateTimeOriginal with OffsetTimeOriginal (else UTC+8); None when absent or invalid."""
    details = exif.get_ifd(ExifTags.IFD.Exif)
    stamp = _text(details.get(ExifTags.Base.DateTimeOriginal))
    if not stamp:
        return None
    try:
        taken = datetime.strptime(stamp[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    offset = _text(details.get(ExifTags.Base.OffsetTimeOriginal))
    zone: tzinfo = DEFAULT_PHOTO_OFFSET
    if offset:
        with contextlib.suppress(ValueError):
            zone = datetime.strptime(offset, "%z").tzinfo or zone
    return taken.replace(tzinfo=zone)
