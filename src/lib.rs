pub mod proto;
pub mod identifiers;
