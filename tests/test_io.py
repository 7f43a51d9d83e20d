import numpy as np
import pytest
import torch
from PIL import Image

from conftest import rand_img, write_png
from ttl.io import ImageReadError, list_images, read_image, save_image


def test_rgb_roundtrip(tmp_path):
    arr = rand_img()
    x = read_image(write_png(tmp_path / "a.png", arr))
    assert x.shape == (3, 40, 48) and x.dtype == torch.float32
    assert np.allclose(x.permute(1, 2, 0).numpy() * 255, arr, atol=1e-3)


def test_grayscale_is_converted_to_rgb(tmp_path):
    g = rand_img()[..., 0]
    x = read_image(write_png(tmp_path / "g.png", g))
    assert x.shape == (3, 40, 48) and torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])


def test_rgba_is_composited_over_white(tmp_path):
    arr = np.zeros((20, 20, 4), np.uint8)
    arr[..., 0] = 255
    arr[:10, :, 3] = 255  # top half opaque red, bottom half transparent
    x = read_image(write_png(tmp_path / "a.png", arr))
    assert torch.allclose(x[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(x[:, 15, 0], torch.ones(3))


def test_16bit_grayscale_png_keeps_precision(tmp_path):
    arr = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)
    p = tmp_path / "g16.png"
    Image.fromarray(arr).save(p)
    x = read_image(p)
    assert np.allclose(x[0].numpy(), arr / 65535.0, atol=1e-6)
    assert len(np.unique(x[0].numpy())) > 256  # not truncated to 8 bits


def test_16bit_rgb_tiff(tmp_path):
    import tifffile

    arr = np.random.default_rng(0).integers(0, 65536, (30, 20, 3), dtype=np.uint16)
    p = tmp_path / "c16.tif"
    tifffile.imwrite(p, arr, photometric="rgb")
    x = read_image(p)
    assert x.shape == (3, 30, 20)
    assert np.allclose(x.permute(1, 2, 0).numpy(), arr / 65535.0, atol=1e-6)


def test_corrupt_file_names_the_file(tmp_path):
    p = tmp_path / "bad.png"
    p.write_bytes(b"this is not an image")
    with pytest.raises(ImageReadError, match="bad.png.*not a readable image"):
        read_image(p)


def test_truncated_jpeg_names_the_file(tmp_path):
    p = tmp_path / "t.jpg"
    Image.fromarray(rand_img(200, 200)).save(p, quality=90)
    p.write_bytes(p.read_bytes()[:600])
    with pytest.raises(ImageReadError, match="t.jpg.*(corrupt or truncated|not a readable)"):
        read_image(p)


def test_tiny_and_huge_images_get_clear_errors(tmp_path):
    p = write_png(tmp_path / "tiny.png", rand_img(3, 5))
    assert read_image(p).shape == (3, 3, 5)  # allowed by default (min_size=1)
    with pytest.raises(ImageReadError, match="tiny.png.*5x3 px.*at least 16"):
        read_image(p, min_size=16)
    big = write_png(tmp_path / "big.png", rand_img(100, 100))
    with pytest.raises(ImageReadError, match="big.png.*above the limit.*max_pixels"):
        read_image(big, max_pixels=5000)


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "nope.png")


def test_exif_orientation_is_applied(tmp_path):
    arr = rand_img(10, 30)
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 CW on display
    p = tmp_path / "r.jpg"
    im.save(p, exif=exif)
    assert read_image(p).shape == (3, 30, 10)


def test_save_image_is_atomic_and_lossless(tmp_path):
    x = torch.rand(3, 17, 9)
    p = save_image(x, tmp_path / "o" / "x.png")
    y = read_image(p)
    assert (y - x).abs().max() <= 0.5 / 255 + 1e-6
    assert not list((tmp_path / "o").glob("*.part"))
    save_image(x, tmp_path / "o" / "x16.tif", bits=16)
    assert (read_image(tmp_path / "o" / "x16.tif") - x).abs().max() < 1e-4


def test_list_images_filters_and_sorts(tmp_path):
    write_png(tmp_path / "b.png", rand_img())
    write_png(tmp_path / "a.PNG", rand_img())
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".hidden.png").write_bytes(b"")
    assert [p.name for p in list_images(tmp_path)] == ["a.PNG", "b.png"]


def test_16bit_rgb_and_rgba_png_keep_precision(tmp_path):
    import png

    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 65536, (12, 9, 3), dtype=np.uint16)
    p = tmp_path / "c16.png"
    png.from_array(rgb.reshape(12, -1), "RGB;16").save(str(p))
    x = read_image(p)
    assert torch.allclose(x, torch.from_numpy(rgb.transpose(2, 0, 1) / 65535.0).float(), atol=1e-6)
    rgba = np.concatenate([rgb, np.full((12, 9, 1), 65535, np.uint16)], -1)
    png.from_array(rgba.reshape(12, -1), "RGBA;16").save(str(tmp_path / "a16.png"))
    assert torch.allclose(read_image(tmp_path / "a16.png"), x, atol=1e-6)  # opaque alpha changes nothing
    data = p.read_bytes()
    (tmp_path / "cut16.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="cut16.png.*corrupt or truncated"):
        read_image(tmp_path / "cut16.png")


def test_16bit_grey_alpha_png_and_pnm_keep_precision(tmp_path):
    import png

    rng = np.random.default_rng(2)
    la = rng.integers(0, 65536, (7, 5, 2), dtype=np.uint16)
    png.from_array(la.reshape(7, -1), "LA;16").save(str(tmp_path / "la16.png"))
    g, a = la[..., 0] / 65535.0, la[..., 1] / 65535.0
    expect = torch.from_numpy(np.repeat((g * a + 1 - a)[None], 3, 0)).float()  # over white, at 16 bits
    assert torch.allclose(read_image(tmp_path / "la16.png"), expect, atol=1e-6)
    rgb = rng.integers(0, 65536, (6, 4, 3), dtype=np.uint16)
    (tmp_path / "c16.ppm").write_bytes(b"P6\n# a comment\n4 6\n65535\n" + rgb.astype(">u2").tobytes())
    assert torch.allclose(read_image(tmp_path / "c16.ppm"), torch.from_numpy(rgb.transpose(2, 0, 1) / 65535.0).float(),
                          atol=1e-6)
    grey = rng.integers(0, 4096, (6, 4), dtype=np.uint16)  # 12-bit data: scaled by its own maximum value
    (tmp_path / "g12.pgm").write_bytes(b"P5 4 6 4095\n" + grey.astype(">u2").tobytes())
    assert torch.allclose(read_image(tmp_path / "g12.pgm")[1], torch.from_numpy(grey / 4095.0).float(), atol=1e-6)
    (tmp_path / "cut.ppm").write_bytes(b"P6\n4 6\n65535\n" + rgb.astype(">u2").tobytes()[:50])
    with pytest.raises(ImageReadError, match="cut.ppm.*truncated"):
        read_image(tmp_path / "cut.ppm")


def test_max_pixels_decides_before_decoding_whatever_pillows_own_limit(tmp_path, monkeypatch):
    import tifffile

    p = write_png(tmp_path / "a.png", rand_img(60, 60))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow would call a 3600-px image a bomb
    assert read_image(p).shape == (3, 60, 60) and Image.MAX_IMAGE_PIXELS == 1000  # its limit is restored
    with pytest.raises(ImageReadError, match="a.png.*0.0036 MP, above the limit of 0.003 MP.*max-megapixels"):
        read_image(p, max_pixels=3000)
    t = tmp_path / "big.tif"
    tifffile.imwrite(str(t), rand_img(80, 80), photometric="rgb")
    monkeypatch.setattr(tifffile.TiffFile, "asarray", lambda *a, **k: pytest.fail("decoded before the size check"))
    with pytest.raises(ImageReadError, match="big.tif.*80x80.*above the limit"):
        read_image(t, max_pixels=5000)
