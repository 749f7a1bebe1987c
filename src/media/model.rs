//! What a picture upload becomes: its format told from its bytes (never
//! from a declared type), its size checked before it is decoded (a
//! decompression bomb declares its size in its header), then re-encoded
//! from pixels alone, so no metadata (EXIF, GPS, XMP, comments) survives,
//! with a thumbnail. Pure: bytes in, bytes out.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

/// Largest upload, in bytes.
pub const MAX_UPLOAD_BYTES: usize = 10 * 1024 * 1024;
/// Most pixels a picture may have.
pub const MAX_PIXELS: u64 = 40_000_000;
/// Longest side a picture may have, in pixels.
pub const MAX_SIDE_PX: u32 = 40_000;
/// Most memory one decode may take (40 MP of RGBA and some room).
const MAX_DECODE_BYTES: u64 = 256 * 1024 * 1024;
/// A thumbnail fits in this square, keeping the picture's proportions.
pub const THUMB_SIDE_PX: u32 = 320;
/// JPEG quality of what is served.
const JPEG_QUALITY: u8 = 88;

crate::text_enum! {
    /// The formats Tandem takes, by their MIME type.
    pub enum Format {
        Jpeg = "image/jpeg",
        Png = "image/png",
        Webp = "image/webp",
    }
}

impl Format {
    fn codec(self) -> ImageFormat {
        match self {
            Format::Jpeg => ImageFormat::Jpeg,
            Format::Png => ImageFormat::Png,
            Format::Webp => ImageFormat::WebP,
        }
    }
}

/// The format the bytes are, by their signature; `None` for anything else.
pub fn sniff(bytes: &[u8]) -> Option<Format> {
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Format::Jpeg)
    } else if bytes.starts_with(PNG) {
        Some(Format::Png)
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(Format::Webp)
    } else {
        None
    }
}

/// Why an upload was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Not JPEG, PNG or WebP, or not a readable one (415).
    Unsupported(String),
    /// Over the byte or pixel limits (413).
    TooLarge(String),
}

/// A picture ready to store.
pub struct Processed {
    pub format: Format,
    pub width: u32,
    pub height: u32,
    /// The picture, re-encoded without metadata.
    pub bytes: Vec<u8>,
    pub thumbnail: Vec<u8>,
}

/// Checks, decodes and re-encodes an upload.
pub fn process(upload: &[u8]) -> Result<Processed, Refused> {
    if upload.len() > MAX_UPLOAD_BYTES {
        return Err(Refused::TooLarge("a picture is at most 10 MiB".into()));
    }
    let format = sniff(upload).ok_or_else(|| {
        Refused::Unsupported("send a JPEG, PNG or WebP picture (told by its bytes)".into())
    })?;
    let mut reader = ImageReader::with_format(Cursor::new(upload), format.codec());
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE_PX);
    limits.max_image_height = Some(MAX_SIDE_PX);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(refusal)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(Refused::TooLarge(format!(
            "a picture has at most 40 megapixels; this one has {width} x {height}"
        )));
    }
    // Read before the pixels, and applied to them: what EXIF said of the
    // picture's orientation must not go with the metadata.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut picture = DynamicImage::from_decoder(decoder).map_err(refusal)?;
    picture.apply_orientation(orientation);
    let thumbnail = picture.thumbnail(THUMB_SIDE_PX, THUMB_SIDE_PX);
    Ok(Processed {
        format,
        width: picture.width(),
        height: picture.height(),
        bytes: encode(&picture, format)?,
        thumbnail: encode(&thumbnail, format)?,
    })
}

fn refusal(e: image::ImageError) -> Refused {
    match e {
        image::ImageError::Limits(_) => Refused::TooLarge(
            "the picture is larger than 40 megapixels or than its decoder may use".into(),
        ),
        e => Refused::Unsupported(format!("the picture could not be read: {e}")),
    }
}

/// Pixels to bytes in `format`, nothing else.
fn encode(picture: &DynamicImage, format: Format) -> Result<Vec<u8>, Refused> {
    let mut out = Vec::new();
    let written = match format {
        // JPEG has no alpha: flattened to RGB.
        Format::Jpeg => DynamicImage::ImageRgb8(picture.to_rgb8()).write_with_encoder(
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY),
        ),
        Format::Png => picture.write_with_encoder(image::codecs::png::PngEncoder::new(&mut out)),
        // The WebP encoder writes lossless RGBA.
        Format::Webp => DynamicImage::ImageRgba8(picture.to_rgba8())
            .write_with_encoder(image::codecs::webp::WebPEncoder::new_lossless(&mut out)),
    };
    written
        .map_err(|e| Refused::Unsupported(format!("the picture could not be re-encoded: {e}")))?;
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img =
            DynamicImage::ImageRgb8(image::RgbImage::from_pixel(w, h, image::Rgb([200, 30, 30])));
        encode(&img, Format::Png).unwrap()
    }

    #[test]
    fn format_is_told_by_bytes() {
        assert_eq!(sniff(&png(2, 2)), Some(Format::Png));
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0rest"), Some(Format::Jpeg));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(Format::Webp));
        assert_eq!(sniff(b"GIF89a"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn pictures_are_re_encoded_with_thumbnails() {
        let p = process(&png(800, 400)).unwrap();
        assert_eq!((p.format, p.width, p.height), (Format::Png, 800, 400));
        let t = image::load_from_memory(&p.thumbnail).unwrap();
        assert_eq!((t.width(), t.height()), (320, 160));
        let jpeg = encode(
            &DynamicImage::ImageRgb8(image::RgbImage::new(10, 10)),
            Format::Jpeg,
        )
        .unwrap();
        assert_eq!(process(&jpeg).unwrap().format, Format::Jpeg);
    }

    /// CRC-32 (IEEE) of PNG chunks.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for b in bytes {
            crc ^= u32::from(*b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// A valid PNG whose header declares `w` x `h` pixels (its data is a 1 x 1 picture's).
    fn png_claiming(w: u32, h: u32) -> Vec<u8> {
        let mut p = png(1, 1);
        p[16..20].copy_from_slice(&w.to_be_bytes());
        p[20..24].copy_from_slice(&h.to_be_bytes());
        let crc = crc32(&p[12..29]);
        p[29..33].copy_from_slice(&crc.to_be_bytes());
        p
    }

    #[test]
    fn bombs_and_broken_pictures_are_refused_before_decoding() {
        assert!(matches!(
            process(&png_claiming(100_000, 100_000)),
            Err(Refused::TooLarge(_))
        ));
        assert!(matches!(
            process(&png_claiming(39_000, 39_000)),
            Err(Refused::TooLarge(_))
        ));
        let truncated = &png(64, 64)[..40];
        assert!(matches!(process(truncated), Err(Refused::Unsupported(_))));
        assert!(matches!(
            process(b"not a picture"),
            Err(Refused::Unsupported(_))
        ));
        let big = vec![0u8; MAX_UPLOAD_BYTES + 1];
        assert!(matches!(process(&big), Err(Refused::TooLarge(_))));
    }
}
