//! Pictures: uploads told apart by their bytes, checked for size before
//! they are decoded, re-encoded without metadata, with thumbnails; stored
//! behind one trait (disk or database); served with caching headers; swept
//! when never used. Other domains attach them by id (`media::tx`).

pub mod blobs;
pub mod handle;
pub mod http;
pub mod model;
pub mod store;
pub mod tx;

pub use handle::Media;
