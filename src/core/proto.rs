//! The generated protobuf types and gRPC stubs of package `assetgw.v1`.

#![allow(clippy::all, missing_docs)]

tonic::include_proto!("assetgw.v1");

/// Run-time fault injection of the mock registries (not part of the partner contract).
pub mod mock {
    tonic::include_proto!("assetgw.mock.v1");
}

/// The encoded `FileDescriptorSet` of `proto/`, for server reflection and JSON output.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/assetgw_descriptor.bin"));

impl AssetKind {
    /// Every kind a court can ask for, in display order.
    pub const ALL: [AssetKind; 6] = [
        AssetKind::Deposit,
        AssetKind::RealEstate,
        AssetKind::Patent,
        AssetKind::Trademark,
        AssetKind::Aircraft,
        AssetKind::Securities,
    ];

    /// The short name used in configuration and on the command line.
    pub fn short_name(self) -> &'static str {
        match self {
            AssetKind::Unspecified => "unspecified",
            AssetKind::Deposit => "deposit",
            AssetKind::RealEstate => "real_estate",
            AssetKind::Patent => "patent",
            AssetKind::Trademark => "trademark",
            AssetKind::Aircraft => "aircraft",
            AssetKind::Securities => "securities",
        }
    }

    /// The inverse of [`AssetKind::short_name`].
    pub fn from_short_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.short_name() == name)
    }
}

impl RegistryKind {
    /// Every kind of registry.
    pub const ALL: [RegistryKind; 5] = [
        RegistryKind::Bank,
        RegistryKind::RealEstate,
        RegistryKind::Ip,
        RegistryKind::Aviation,
        RegistryKind::Securities,
    ];

    /// The short name used in configuration and on the command line.
    pub fn short_name(self) -> &'static str {
        match self {
            RegistryKind::Unspecified => "unspecified",
            RegistryKind::Bank => "bank",
            RegistryKind::RealEstate => "real_estate",
            RegistryKind::Ip => "ip",
            RegistryKind::Aviation => "aviation",
            RegistryKind::Securities => "securities",
        }
    }

    /// The inverse of [`RegistryKind::short_name`].
    pub fn from_short_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.short_name() == name)
    }

    /// The asset kinds a registry of this kind reports unless configured otherwise.
    /// Banks report the fund units they sold as well as deposits.
    pub fn default_asset_kinds(self) -> Vec<AssetKind> {
        match self {
            RegistryKind::Unspecified => vec![],
            RegistryKind::Bank => vec![AssetKind::Deposit, AssetKind::Securities],
            RegistryKind::RealEstate => vec![AssetKind::RealEstate],
            RegistryKind::Ip => vec![AssetKind::Patent, AssetKind::Trademark],
            RegistryKind::Aviation => vec![AssetKind::Aircraft],
            RegistryKind::Securities => vec![AssetKind::Securities],
        }
    }
}

/// Configuration files name kinds by their short names.
macro_rules! deserialize_by_short_name {
    ($ty:ty, $what:literal) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let name = String::deserialize(d)?;
                <$ty>::from_short_name(&name).ok_or_else(|| {
                    let names: Vec<_> = <$ty>::ALL.iter().map(|k| k.short_name()).collect();
                    serde::de::Error::custom(format!(
                        "unknown {} `{name}`; expected one of {}",
                        $what,
                        names.join(", ")
                    ))
                })
            }
        }
    };
}
deserialize_by_short_name!(AssetKind, "asset kind");
deserialize_by_short_name!(RegistryKind, "registry kind");

/// A protobuf timestamp of an instant.
pub fn ts(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0) }
}

/// The instant of a protobuf timestamp (the epoch for one out of range).
pub fn time_of(t: &prost_types::Timestamp) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)).unwrap_or_default()
}
