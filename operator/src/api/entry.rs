//! `CatalogEntry`: one node's listing of one product. Written only by the
//! controller; users read them (`kubectl get ce -n dfn-guangzhou`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::product::Classification;

/// A data product as listed in one node's catalog. Written only by flowfed.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "flowfed.io",
    version = "v1alpha1",
    kind = "CatalogEntry",
    namespaced,
    plural = "catalogentries",
    shortname = "ce",
    category = "flowfed",
    status = "CatalogEntryStatus",
    doc = "A data product as listed in one node's catalog view. Written only by the flowfed controller; changes by anyone else are put back.",
    printcolumn(name = "Publisher", type_ = "string", json_path = ".spec.product.node"),
    printcolumn(name = "Title", type_ = "string", json_path = ".spec.title"),
    printcolumn(
        name = "Classification",
        type_ = "string",
        json_path = ".spec.classification"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct CatalogEntrySpec {
    /// The product listed.
    pub product: ProductRef,
    /// Title of the product.
    #[schemars(length(max = 256))]
    pub title: String,
    /// Description of the product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16384))]
    pub description: Option<String>,
    /// Search keywords.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 64)))]
    pub keywords: Vec<String>,
    /// Format of the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub format: Option<String>,
    /// Where a consumer requests access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub access_url: Option<String>,
    /// Version of the product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub version: Option<String>,
    /// Data classification.
    pub classification: Classification,
    /// When the product was published (its creation time).
    pub published_at: Time,
    /// Hash of the listing fields, so unchanged products cause no writes.
    #[schemars(length(max = 64))]
    pub content_hash: String,
}

/// Identity of the product an entry lists.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ProductRef {
    /// Publisher node.
    #[schemars(length(max = 63))]
    pub node: String,
    /// Namespace of the DataProduct in the hub.
    #[schemars(length(max = 63))]
    pub namespace: String,
    /// Name of the DataProduct.
    #[schemars(length(max = 253))]
    pub name: String,
    /// UID of the DataProduct.
    #[schemars(length(max = 64))]
    pub uid: String,
}

/// Observed state of an entry (reserved: the controller records nothing here yet,
/// the subresource exists so status writers never race spec writes).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CatalogEntryStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
