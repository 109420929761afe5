//! Where catalog entries come from and where they go.
//!
//! `listing` turns a product into the entry every visible node lists, with a
//! deterministic name (so restarts never duplicate) and a content hash;
//! `member` holds the clients of member clusters, built from kubeconfig Secrets
//! that are checked before use.

pub mod kubeconfig;
pub mod member;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use sha2::{Digest, Sha256};

use crate::api::{
    CatalogEntrySpec, DataProduct, MANAGED_BY, MANAGED_BY_LABEL, PRODUCT_UID_LABEL,
    PUBLISHER_NODE_LABEL, ProductRef, TARGET_NODE_LABEL,
};

/// The name of a product's entry in every catalog: `<publisher>.<product>`,
/// shortened with a hash suffix when that would exceed 253 characters.
pub fn entry_name(publisher: &str, product: &str) -> String {
    let full = format!("{publisher}.{product}");
    if full.len() <= 253 {
        return full;
    }
    let digest = hex(&Sha256::digest(full.as_bytes()))[..16].to_owned();
    let keep = 253 - digest.len() - 1;
    let mut prefix = full[..keep].trim_end_matches(['.', '-']).to_owned();
    prefix.push('-');
    prefix.push_str(&digest);
    prefix
}

/// The entry spec a product is listed with.
pub fn listing(product: &DataProduct, publisher: &str) -> CatalogEntrySpec {
    let spec = &product.spec;
    let mut entry = CatalogEntrySpec {
        product: ProductRef {
            node: publisher.to_owned(),
            namespace: product.namespace().unwrap_or_default(),
            name: product.name_any(),
            uid: product.uid().unwrap_or_default(),
        },
        title: spec.title.clone(),
        description: spec.description.clone(),
        keywords: spec.keywords.clone(),
        format: spec.format.clone(),
        access_url: spec.access_url.clone(),
        version: spec.version.clone(),
        classification: spec.classification,
        published_at: product
            .metadata
            .creation_timestamp
            .clone()
            .unwrap_or(Time(Timestamp::UNIX_EPOCH)),
        content_hash: String::new(),
    };
    entry.content_hash = content_hash(&entry);
    entry
}

/// SHA-256 (first 32 hex digits) of the listing fields, hash field excluded.
pub fn content_hash(entry: &CatalogEntrySpec) -> String {
    let mut unhashed = entry.clone();
    unhashed.content_hash.clear();
    let bytes = serde_json::to_vec(&unhashed).expect("entry specs serialize");
    hex(&Sha256::digest(&bytes))[..32].to_owned()
}

/// Labels of an entry for `product` in `target`'s catalog.
pub fn entry_labels(entry: &CatalogEntrySpec, target: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (PUBLISHER_NODE_LABEL.to_owned(), entry.product.node.clone()),
        (PRODUCT_UID_LABEL.to_owned(), entry.product.uid.clone()),
        (TARGET_NODE_LABEL.to_owned(), target.to_owned()),
        (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
    ])
}

/// Deletes entry `name`; an entry already gone is not an error. `Ok(true)` when
/// this call deleted it.
pub async fn delete_entry(
    api: &kube::Api<crate::api::CatalogEntry>,
    name: &str,
) -> Result<bool, kube::Error> {
    match api.delete(name, &Default::default()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(error) => Err(error),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn entry_names_are_dns_subdomains_and_distinct(
            publisher in "[a-z0-9]([a-z0-9-]{0,57}[a-z0-9])?",
            a in "[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?",
            b in "[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?",
        ) {
            let name = entry_name(&publisher, &a);
            prop_assert!(name.len() <= 253);
            prop_assert!(name.starts_with(&publisher));
            prop_assert!(!name.ends_with('-') && !name.ends_with('.'));
            prop_assert_eq!(&name, &entry_name(&publisher, &a), "deterministic");
            if a != b {
                prop_assert_ne!(name, entry_name(&publisher, &b));
            }
        }
    }

    #[test]
    fn short_names_are_publisher_dot_product() {
        assert_eq!(
            entry_name("shanghai-lingang", "port-logistics-index"),
            "shanghai-lingang.port-logistics-index"
        );
    }
}
