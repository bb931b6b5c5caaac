//! The generated protobuf types and gRPC stubs of package `assetgw.v1`.

#![allow(clippy::all, missing_docs)]

tonic::include_proto!("assetgw.v1");

/// The encoded `FileDescriptorSet` of `proto/`, for server reflection and JSON output.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/assetgw_descriptor.bin"));
