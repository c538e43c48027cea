//! The SOPS file format: tree, stores, `ENC[]` codec, MAC and metadata.

pub mod argv;
pub mod cipher;
pub mod engine;
pub mod metadata;
pub mod rules;
pub mod scalar;
pub mod store;
pub mod tree;

pub use cipher::DataKey;
pub use metadata::{KeyGroup, Metadata, Stanza};
pub use rules::Rule;
pub use store::Format;
pub use tree::{Documents, Map, MapItem, PathSeg, Seq, SeqItem, Value};
