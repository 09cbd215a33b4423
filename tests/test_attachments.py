"""Photos of events through the API: real images made by Pillow, cleaned, stored, served by role."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib

import pytest
from PIL import ExifTags, Image, ImageCms
from PIL.TiffImagePlugin import IFDRational
from sqlalchemy import text

from api.attachments import images
from api.attachments.storage import FileBackend, object_key
from api.settings import AttachmentSettings, Settings
from tests.conftest import bearer

FIELD_GRID, NEIGHBOUR = "320571005001001", "320571005001002"
RED, BLUE = (220, 20, 20), (20, 20, 220)
GPS = {"lat": (31, 18, 36.12), "lon": (120, 43, 48.5)}  # 31.3100333 N, 120.7301389 E


@pytest.fixture
def settings(service_url, database_url, tmp_path) -> Settings:
    return Settings(
        database_url=service_url,
        owner_database_url=database_url,
        attachments=AttachmentSettings(directory=tmp_path / "photos", max_bytes=4 * 1024 * 1024),
    )


def _point(engine, code: str) -> tuple[float, float]:
    with engine.connect() as connection:
        return tuple(
            connection.execute(
                text(
                    "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p FROM grid "
                    "WHERE code = :code) s"
                ),
                {"code": code},
            ).one()
        )


def _event(client, tokens, engine, code=FIELD_GRID, external_id="photo-1") -> int:
    lon, lat = _point(engine, code)
    body = {"source": "patrol", "external_id": external_id, "category_code": "E01"}
    body |= {"lon": lon, "lat": lat, "crs": "EPSG:4326", "description": "井盖缺失"}
    answer = client.post("/api/v1/events", json=body, headers=bearer(tokens["dispatcher"]))
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def _exif(lat_ref="N", lon_ref="E", orientation=6, datum=None, gps=GPS, offset="+08:00"):
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Xiaomi"
    exif[ExifTags.Base.Model] = "Redmi Note 12"
    exif[ExifTags.Base.Orientation] = orientation
    details = exif.get_ifd(ExifTags.IFD.Exif)
    details[ExifTags.Base.DateTimeOriginal] = "2024:09:20 10:30:00"
    if offset:
        details[ExifTags.Base.OffsetTimeOriginal] = offset
    position = exif.get_ifd(ExifTags.IFD.GPSInfo)
    position[ExifTags.GPS.GPSLatitudeRef] = lat_ref
    position[ExifTags.GPS.GPSLatitude] = tuple(IFDRational(v) for v in gps["lat"])
    position[ExifTags.GPS.GPSLongitudeRef] = lon_ref
    position[ExifTags.GPS.GPSLongitude] = tuple(IFDRational(v) for v in gps["lon"])
    if datum:
        position[ExifTags.GPS.GPSMapDatum] = datum
    return exif


def _halves(mode="RGB", size=(400, 200)) -> Image.Image:
    """Left half red, right half blue: orientation shows where the halves end up."""
    image = Image.new(mode, size, RED + ((255,) if mode == "RGBA" else ()))
    image.paste(BLUE, (size[0] // 2, 0, size[0], size[1]))
    return image


def phone_jpeg(**exif_options) -> bytes:
    """What a phone sends: EXIF with GPS, time, make and a rotation, an ICC profile, XMP, a comment."""
    buffer = io.BytesIO()
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    _halves().save(
        buffer,
        "JPEG",
        quality=92,
        exif=_exif(**exif_options),
        icc_profile=srgb,
        comment=b"secret comment",
        xmp=b"<x:xmpmeta><rdf:Description GPSLatitude='31,18N'/></x:xmpmeta>",
    )
    return buffer.getvalue()


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _upload(client, token, event_id, data, stage=None, name="photo.jpg"):
    form = {"stage": stage} if stage else None
    return client.post(
        f"/api/v1/events/{event_id}/attachments",
        files={"file": (name, data, "application/octet-stream")},
        data=form,
        headers=bearer(token),
    )


def test_a_phone_photo_is_stored_upright_without_metadata_and_keeps_its_position(
    client, tokens, engine, settings
):
    event_id = _event(client, tokens, engine)
    answer = _upload(client, tokens["field_staff"], event_id, phone_jpeg(), stage="before")
    assert answer.status_code == 201, answer.text
    photo = answer.json()
    # Orientation 6 (rotate 90° clockwise) applied: 400×200 becomes 200×400, red on top.
    assert (photo["width"], photo["height"], photo["stage"]) == (200, 400, "before")
    assert photo["lon"] == pytest.approx(120 + 43 / 60 + 48.5 / 3600, abs=1e-9)
    assert photo["lat"] == pytest.approx(31 + 18 / 60 + 36.12 / 3600, abs=1e-9)
    assert photo["taken_at"] == "2024-09-20T02:30:00+00:00"
    assert photo["media_type"] == "image/jpeg"
    assert photo["urls"] == {
        "file": f"/api/v1/attachments/{photo['id']}",
        "thumbnail": f"/api/v1/attachments/{photo['id']}/thumbnail",
    }
    sha = photo["sha256"]
    stored = settings.attachments.directory / sha[:2] / f"{sha}.jpg"
    content = stored.read_bytes()
    assert hashlib.sha256(content).hexdigest() == sha and len(content) == photo["bytes"]
    for secret in (b"Exif", b"Xiaomi", b"secret comment", b"GPSLatitude", b"ICC_PROFILE", b"xmp"):
        assert secret not in content
    with Image.open(io.BytesIO(content)) as cleaned:
        assert len(cleaned.getexif()) == 0
        assert not {"exif", "icc_profile", "comment", "xmp"} & set(cleaned.info)
        assert cleaned.size == (200, 400)
        top, bottom = cleaned.getpixel((100, 50)), cleaned.getpixel((100, 350))
        assert top[0] > 150 > top[2] and bottom[2] > 150 > bottom[0]
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT lon, lat, taken_at, storage, uploaded_by FROM event_attachment")
        ).one()
        outbox = connection.execute(
            text("SELECT payload FROM outbox WHERE kind = 'attachment' AND event_id = :id"),
            {"id": event_id},
        ).scalar_one()
    assert (row.lon, row.lat) == (photo["lon"], photo["lat"]) and row.storage == "file"
    assert row.uploaded_by.endswith(":test-field_staff")
    assert outbox["attachment_id"] == photo["id"] and outbox["stage"] == "before"
    # The same photo again (a retried upload): the same row, nothing new.
    again = _upload(client, tokens["field_staff"], event_id, phone_jpeg(), stage="before")
    assert again.status_code == 200 and again.json()["id"] == photo["id"]
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM event_attachment")).scalar() == 1


def test_png_with_alpha_and_webp_keep_their_format_and_transparency(client, tokens, engine):
    event_id = _event(client, tokens, engine)
    png = _halves("RGBA")
    png.paste((0, 0, 0, 0), (0, 0, 50, 50))
    answer = _upload(client, tokens["dispatcher"], event_id, _encoded(png, "PNG"), name="a.png")
    assert answer.status_code == 201, answer.text
    assert answer.json()["media_type"] == "image/png" and answer.json()["lon"] is None
    served = client.get(answer.json()["urls"]["file"], headers=bearer(tokens["dispatcher"]))
    with Image.open(io.BytesIO(served.content)) as image:
        assert image.format == "PNG" and image.mode == "RGBA"
        assert image.getpixel((10, 10))[3] == 0 and image.getpixel((300, 100))[3] == 255
    thumbnail = client.get(answer.json()["urls"]["thumbnail"], headers=bearer(tokens["admin"]))
    with Image.open(io.BytesIO(thumbnail.content)) as small:
        assert (small.format, small.size, small.mode) == ("WEBP", (320, 160), "RGBA")
    # A WebP from the southern and western hemispheres, its time without an offset (UTC+8).
    exif = _exif(lat_ref="S", lon_ref="W", orientation=1, offset=None)
    webp = _encoded(_halves(), "WEBP", exif=exif.tobytes(), quality=90)
    answer = _upload(client, tokens["dispatcher"], event_id, webp, stage="after")
    assert answer.status_code == 201, answer.text
    photo = answer.json()
    assert photo["media_type"] == "image/webp" and (photo["width"], photo["height"]) == (400, 200)
    assert photo["lat"] < 0 and photo["lon"] < 0
    assert photo["taken_at"] == "2024-09-20T02:30:00+00:00"
    served = client.get(photo["urls"]["file"], headers=bearer(tokens["dispatcher"]))
    assert b"EXIF" not in served.content and b"Xiaomi" not in served.content


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width × height pixels, with almost no data (a lying bomb)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


REFUSED = {
    "gif": (_encoded(Image.new("RGB", (8, 8)), "GIF"), "unsupported_format", "GIF"),
    "svg": (
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>',
        "unsupported_format",
        "SVG",
    ),
    "pdf": (b"%PDF-1.7\n1 0 obj<<>>endobj\n%%EOF", "unsupported_format", "PDF"),
    "heic": (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "heic_unsupported", "HEIC"),
    "text": (b"hello, not a photo", "unsupported_format", "JPEG"),
    "jpeg magic, html body": (
        b"\xff\xd8\xff\xe0<html><script>alert(1)</script>",
        "unreadable_image",
        "JPEG",
    ),
    "truncated jpeg": (phone_jpeg()[:1500], "unreadable_image", "JPEG"),
    "png with a bad crc": (
        _encoded(_halves(), "PNG")[:-20] + b"\x00" * 20,
        "unreadable_image",
        "PNG",
    ),
    "empty": (b"", "empty_file", "空"),
    "pixel bomb (header)": (_png_header_only(100_000, 100_000), "too_many_pixels", "像素"),
}


def test_files_that_are_not_clean_photos_are_refused_naming_the_file(client, tokens, engine):
    event_id = _event(client, tokens, engine)
    wrong = []
    for name, (data, code, mentioned) in REFUSED.items():
        answer = _upload(client, tokens["dispatcher"], event_id, data)
        error = answer.json().get("error", {})
        if (answer.status_code, error.get("code"), error.get("where")) != (422, code, "body.file"):
            wrong.append(f"{name}: {answer.status_code} {error}")
        elif mentioned not in error["message"]:
            wrong.append(f"{name}: message {error['message']}")
    # A real bomb: ten thousand by ten thousand pixels (100 million) in a few kilobytes.
    bomb = _encoded(Image.new("1", (10_000, 10_000)), "PNG", optimize=True)
    answer = _upload(client, tokens["dispatcher"], event_id, bomb)
    assert len(bomb) < 100_000 and answer.json()["error"]["code"] == "too_many_pixels"
    assert not wrong, "\n".join(wrong)
    assert len(REFUSED) == 10
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM event_attachment")).scalar() == 0


def test_a_polyglot_is_decoded_and_stored_without_its_payload(client, tokens, engine):
    event_id = _event(client, tokens, engine)
    payload = b"PK\x03\x04<script>alert(document.cookie)</script>"
    answer = _upload(client, tokens["dispatcher"], event_id, phone_jpeg() + payload)
    assert answer.status_code == 201, answer.text
    served = client.get(answer.json()["urls"]["file"], headers=bearer(tokens["dispatcher"]))
    assert b"<script>" not in served.content and b"PK\x03\x04" not in served.content


def test_oversized_uploads_answer_413(client, tokens, engine, settings):
    event_id = _event(client, tokens, engine)
    big = b"\xff\xd8\xff\xe0" + b"\x00" * settings.attachments.max_bytes
    answer = _upload(client, tokens["dispatcher"], event_id, big)
    assert answer.status_code == 413
    assert answer.json()["error"]["where"] == "body.file"


def test_unusual_photos_become_plain_ones(client, tokens, engine):
    event_id = _event(client, tokens, engine)
    cases = {
        "cmyk jpeg": (_encoded(Image.new("CMYK", (64, 48), (0, 255, 255, 0)), "JPEG"), "RGB"),
        "16-bit png": (_encoded(Image.new("I;16", (64, 48), 40_000), "PNG"), "L"),
        "palette png": (_encoded(_halves().convert("P"), "PNG", transparency=0), "P"),
    }
    frames = [_halves(), _halves().rotate(180)]
    animated = io.BytesIO()
    frames[0].save(animated, "WEBP", save_all=True, append_images=frames[1:], duration=100)
    cases["animated webp"] = (animated.getvalue(), "RGB")
    for name, (data, mode) in cases.items():
        answer = _upload(client, tokens["dispatcher"], event_id, data)
        assert answer.status_code == 201, f"{name}: {answer.text}"
        served = client.get(answer.json()["urls"]["file"], headers=bearer(tokens["dispatcher"]))
        with Image.open(io.BytesIO(served.content)) as image:
            assert image.mode == mode, name
            assert getattr(image, "n_frames", 1) == 1, name
    assert len(cases) == 4


def test_gps_that_cannot_be_trusted_is_not_kept():
    def position(**options):
        exif = Image.Exif()
        exif.load(_exif(**options).tobytes())
        return images.gps_position(exif)

    assert position() == pytest.approx((120.7301389, 31.3100333))
    assert position(datum="TOKYO") == (None, None)
    assert position(gps={"lat": (0, 0, 0), "lon": (0, 0, 0)}) == (None, None)
    assert position(gps={"lat": (91, 0, 0), "lon": (120, 0, 0)}) == (None, None)
    assert position(gps={"lat": (IFDRational(1, 0), 0, 0), "lon": (120, 0, 0)}) == (None, None)


def test_storage_paths_come_only_from_the_hash(tmp_path):
    sha = "ab" + "0" * 62
    assert object_key(sha, "image/png") == f"ab/{sha}.png"
    for bad in ("../../etc/passwd", "AB" + "0" * 62, sha[:-1], sha + "\n"):
        with pytest.raises(ValueError):
            object_key(bad, "image/png")
    with pytest.raises(KeyError):
        object_key(sha, "text/html")
    FileBackend(tmp_path).put(object_key(sha, "image/png"), b"x", "image/png")
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png")] == [
        f"ab/{sha}.png"
    ]


def test_who_may_add_photos(client, tokens, engine):
    mine = _event(client, tokens, engine)
    theirs = _event(client, tokens, engine, code=NEIGHBOUR, external_id="photo-2")
    photo = _encoded(_halves(), "JPEG")
    expected = {
        ("viewer", mine): (403, "insufficient_role"),
        ("planner", mine): (403, "insufficient_role"),
        ("field_staff", theirs): (403, "out_of_scope"),
        ("handler", mine): (403, "out_of_scope"),  # not dispatched to the handler's unit
        ("supervisor", theirs): (201, None),
        ("dispatcher", 999_999): (404, "event_not_found"),
    }
    for (role, event_id), (status, code) in expected.items():
        answer = _upload(client, tokens[role], event_id, photo)
        assert answer.status_code == status, f"{role}: {answer.text}"
        if code:
            assert answer.json()["error"]["code"] == code, role
    anonymous = client.post(
        f"/api/v1/events/{mine}/attachments", files={"file": ("a.jpg", photo, "image/jpeg")}
    )
    assert anonymous.status_code == 401
    for form, where in (({"stage": "during"}, "body.stage"), ({}, "body.file")):
        files = {} if where == "body.file" else {"file": ("a.jpg", photo, "image/jpeg")}
        answer = client.post(
            f"/api/v1/events/{mine}/attachments",
            data=form or {"stage": "after"},
            files=files or None,
            headers=bearer(tokens["dispatcher"]),
        )
        assert answer.status_code == 422 and answer.json()["error"]["where"] == where
    with engine.begin() as connection:
        connection.execute(text("UPDATE event SET status = 'closed' WHERE id = :id"), {"id": mine})
    answer = _upload(client, tokens["dispatcher"], mine, photo)
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "event_finished"
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM event_attachment")).scalar() == 1


def test_photos_are_served_only_to_callers_who_see_the_event(client, tokens, engine):
    event_id = _event(client, tokens, engine)
    photo = _upload(client, tokens["dispatcher"], event_id, phone_jpeg()).json()
    urls = [f"/api/v1/events/{event_id}/attachments", *photo["urls"].values()]
    allowed = {"admin", "planner", "dispatcher", "supervisor", "field_staff"}
    wrong = []
    for role in [*tokens, "anonymous", "bogus"]:
        headers = {} if role == "anonymous" else bearer(tokens.get(role, "wg_bogus"))
        expected = 200 if role in allowed else 401 if role in ("anonymous", "bogus") else 403
        for url in urls:
            answer = client.get(url, headers=headers)
            if answer.status_code != expected:
                wrong.append(f"{role} {url}: {answer.status_code}, not {expected}")
    assert not wrong, "\n".join(wrong)
    listed = client.get(urls[0], headers=bearer(tokens["field_staff"])).json()
    assert listed["count"] == 1 and listed["attachments"][0]["lat"] == photo["lat"]
    assert listed["attachments"][0]["uploaded_by"] == photo["uploaded_by"].rsplit(":", 1)[0]
    image = client.get(urls[1], headers=bearer(tokens["supervisor"]))
    assert image.headers["content-type"] == "image/jpeg"
    assert image.headers["etag"] == f'"{photo["sha256"]}"'
    assert hashlib.sha256(image.content).hexdigest() == photo["sha256"]
    assert image.headers["x-content-type-options"] == "nosniff"
    assert image.headers["cache-control"].startswith("private")
    again = client.get(
        urls[1], headers={**bearer(tokens["supervisor"]), "If-None-Match": image.headers["etag"]}
    )
    assert again.status_code == 304 and again.content == b""
    thumbnail = client.get(urls[2], headers=bearer(tokens["admin"]))
    assert thumbnail.headers["content-type"] == "image/webp"
    assert thumbnail.headers["etag"] != image.headers["etag"]
    missing = client.get("/api/v1/attachments/999999", headers=bearer(tokens["admin"]))
    assert missing.status_code == 404


def test_a_handler_adds_the_after_photo_it_hands_in(client, tokens, engine):
    event_id = _event(client, tokens, engine)
    version = 1
    for role, action, fields in (("dispatcher", "accept", {}), ("dispatcher", "dispatch", {})):
        answer = client.post(
            f"/api/v1/events/{event_id}/transitions",
            json={"action": action, "version": version, **fields},
            headers=bearer(tokens[role]),
        )
        assert answer.status_code == 200, answer.text
        version = answer.json()["version"]
    answer = client.post(
        f"/api/v1/events/{event_id}/transitions",
        json={"action": "start", "version": version},
        headers=bearer(tokens["handler"]),
    )
    assert answer.status_code == 200, answer.text
    version = answer.json()["version"]
    photo = _upload(client, tokens["handler"], event_id, phone_jpeg(), stage="after")
    assert photo.status_code == 201, photo.text
    served = client.get(photo.json()["urls"]["file"], headers=bearer(tokens["handler"]))
    assert served.status_code == 200  # dispatched to its unit: its photos are the handler's
    handle = {
        "action": "handle",
        "version": version,
        "note": "已修复",
        "photos": [photo.json()["id"]],
    }
    answer = client.post(
        f"/api/v1/events/{event_id}/transitions", json=handle, headers=bearer(tokens["handler"])
    )
    assert answer.status_code == 200, answer.text


def test_a_failure_leaves_no_row(client, tokens, engine, settings, monkeypatch):
    from api.attachments import service

    event_id = _event(client, tokens, engine)

    def unavailable(self, key, data, media_type):
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(FileBackend, "put", unavailable)
        answer = _upload(client, tokens["dispatcher"], event_id, phone_jpeg())
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "storage_unavailable"

    def broken(*args, **kwargs):
        raise RuntimeError("the database went away after the row was written")

    with monkeypatch.context() as patch:
        patch.setattr(service.workflow_rows, "enqueue", broken)
        with pytest.raises(RuntimeError):
            _upload(client, tokens["dispatcher"], event_id, phone_jpeg())
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM event_attachment")).scalar() == 0
        assert (
            connection.execute(
                text("SELECT count(*) FROM outbox WHERE kind = 'attachment'")
            ).scalar()
            == 0
        )
    # The retry succeeds and reuses the bytes already written.
    answer = _upload(client, tokens["dispatcher"], event_id, phone_jpeg())
    assert answer.status_code == 201
    assert len(list(settings.attachments.directory.rglob("*.*"))) == 2  # photo and thumbnail


@pytest.fixture
def s3_endpoint():
    """A real S3 API on a local port (moto's server mode), with one empty bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket="wangge-photos")
    yield endpoint
    server.stop()


def test_photos_go_to_an_s3_bucket_when_one_is_configured(
    s3_endpoint, service_url, database_url, tmp_path, tokens, engine
):
    import boto3
    from fastapi.testclient import TestClient

    from api.app import create_app

    bucket = AttachmentSettings(
        directory=tmp_path / "photos",
        s3_endpoint=s3_endpoint,
        s3_bucket="wangge-photos",
        s3_access_key="testing",
        s3_secret_key="testing",
    )
    settings = Settings(
        database_url=service_url, owner_database_url=database_url, attachments=bucket
    )
    with TestClient(create_app(settings)) as client:
        event_id = _event(client, tokens, engine)
        answer = _upload(client, tokens["dispatcher"], event_id, phone_jpeg(), stage="before")
        assert answer.status_code == 201, answer.text
        photo = answer.json()
        served = client.get(photo["urls"]["file"], headers=bearer(tokens["dispatcher"]))
        thumbnail = client.get(photo["urls"]["thumbnail"], headers=bearer(tokens["dispatcher"]))
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    keys = sorted(item["Key"] for item in s3.list_objects_v2(Bucket="wangge-photos")["Contents"])
    sha = photo["sha256"]
    assert f"{sha[:2]}/{sha}.jpg" in keys and len(keys) == 2
    stored = s3.get_object(Bucket="wangge-photos", Key=f"{sha[:2]}/{sha}.jpg")
    assert stored["ContentType"] == "image/jpeg"
    assert (
        hashlib.sha256(stored["Body"].read()).hexdigest()
        == sha
        == hashlib.sha256(served.content).hexdigest()
    )
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/webp"
    assert not (tmp_path / "photos").exists()  # nothing written to the directory
    with engine.connect() as connection:
        assert connection.execute(text("SELECT storage FROM event_attachment")).scalar() == "s3"


def test_an_unusable_bucket_answers_503_and_stores_nothing(
    s3_endpoint, service_url, database_url, tmp_path, tokens, engine
):
    from fastapi.testclient import TestClient

    from api.app import create_app

    missing = AttachmentSettings(
        directory=tmp_path / "photos",
        s3_endpoint=s3_endpoint,
        s3_bucket="no-such-bucket",
        s3_access_key="testing",
        s3_secret_key="testing",
    )
    settings = Settings(
        database_url=service_url, owner_database_url=database_url, attachments=missing
    )
    with TestClient(create_app(settings)) as client:
        event_id = _event(client, tokens, engine)
        answer = _upload(client, tokens["dispatcher"], event_id, phone_jpeg())
    assert answer.status_code == 503 and answer.headers["retry-after"]
    assert answer.json()["error"]["code"] == "storage_unavailable"
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM event_attachment")).scalar() == 0
