//! One record per change of a product's listing: the ledger's leaves. A
//! record carries the whole listing after the change (so one record answers
//! "where was it visible, and why"), and what the change added and withdrew.

use serde::{Deserialize, Serialize};

/// The product a record is about.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ProductId {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// A product's listing: what the ledger compares to decide whether anything
/// changed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Listing {
    /// The publisher node.
    pub publisher: String,
    /// The DataProcessor the product names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processor: Option<String>,
    /// The catalog entry's content hash.
    pub content_hash: String,
    pub classification: String,
    /// Where the product is listed, by node name, with why.
    pub visible: Vec<Visible>,
    /// Where the rules keep it from, by node name.
    pub blocked: Vec<Blocked>,
}

/// One node whose catalog lists the product.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Visible {
    pub node: String,
    /// The visible reason of the cross-border rules (e.g. `Mechanism`).
    pub reason: String,
    pub rule: u8,
    /// The mechanisms in force that allow a listing abroad.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mechanisms: Vec<MechanismUse>,
}

/// A cross-border mechanism a foreign listing rests on.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MechanismUse {
    #[serde(rename = "type")]
    pub kind: String,
    pub reference: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
}

/// One node the rules keep the product from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    pub node: String,
    pub reason: String,
    pub rule: u8,
}

/// What kind of change a record is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The product's first listing.
    Listed,
    /// Anything else that changed the listing.
    Changed,
    /// A mechanism expired and withdrew the product from at least one node.
    Expired,
    /// The product was deleted and withdrawn everywhere.
    Deleted,
}

/// One leaf of the ledger.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// When the change was made (RFC 3339, UTC).
    pub time: String,
    pub change: Change,
    pub product: ProductId,
    /// The listing after the change.
    pub listing: Listing,
    /// Nodes that list the product since this change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub became_visible: Vec<String>,
    /// Nodes that stopped listing it with this change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub withdrawn: Vec<String>,
}

/// The reason a node blocked by an expired mechanism shows.
const EXPIRED: &str = "MechanismExpired";

impl Record {
    /// The record of going from `previous` to `current`, or `None` when
    /// nothing changed. `current` is `None` when the product was deleted.
    pub fn of_change(
        product: &ProductId,
        previous: Option<&Listing>,
        current: Option<&Listing>,
        time: String,
    ) -> Option<Record> {
        let listing = match (previous, current) {
            (Some(before), Some(now)) if before == now => return None,
            (None, None) => return None,
            (_, Some(now)) => now.clone(),
            (Some(before), None) => Listing {
                visible: Vec::new(),
                blocked: Vec::new(),
                ..before.clone()
            },
        };
        let nodes = |l: Option<&Listing>| -> Vec<String> {
            l.map(|l| l.visible.iter().map(|v| v.node.clone()).collect())
                .unwrap_or_default()
        };
        let (before, after) = (nodes(previous), nodes(Some(&listing)));
        let became_visible: Vec<String> = after
            .iter()
            .filter(|n| !before.contains(n))
            .cloned()
            .collect();
        let withdrawn: Vec<String> = before
            .iter()
            .filter(|n| !after.contains(n))
            .cloned()
            .collect();
        let expired = listing
            .blocked
            .iter()
            .any(|b| b.reason == EXPIRED && withdrawn.contains(&b.node));
        let change = match (previous, current) {
            (_, None) => Change::Deleted,
            (None, Some(_)) => Change::Listed,
            _ if expired => Change::Expired,
            _ => Change::Changed,
        };
        Some(Record {
            time,
            change,
            product: product.clone(),
            listing,
            became_visible,
            withdrawn,
        })
    }

    /// The exact bytes of the record's leaf.
    pub fn to_leaf(&self) -> String {
        serde_json::to_string(self).expect("records serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product() -> ProductId {
        ProductId {
            namespace: "dfn-shanghai".into(),
            name: "port-index".into(),
            uid: "u1".into(),
        }
    }

    fn listing(visible: &[&str], blocked: &[(&str, &str)]) -> Listing {
        Listing {
            publisher: "shanghai".into(),
            processor: None,
            content_hash: "abc".into(),
            classification: "Personal".into(),
            visible: visible
                .iter()
                .map(|n| Visible {
                    node: (*n).into(),
                    reason: "SameJurisdiction".into(),
                    rule: 2,
                    mechanisms: Vec::new(),
                })
                .collect(),
            blocked: blocked
                .iter()
                .map(|(n, r)| Blocked {
                    node: (*n).into(),
                    reason: (*r).into(),
                    rule: 15,
                })
                .collect(),
        }
    }

    #[test]
    fn an_unchanged_listing_is_no_record() {
        let same = listing(&["beijing"], &[]);
        assert_eq!(
            Record::of_change(&product(), Some(&same), Some(&same), "t".into()),
            None
        );
    }

    #[test]
    fn the_first_listing_names_every_node_it_reached() {
        let record = Record::of_change(
            &product(),
            None,
            Some(&listing(&["a", "b"], &[])),
            "t".into(),
        )
        .unwrap();
        assert_eq!(record.change, Change::Listed);
        assert_eq!(record.became_visible, ["a", "b"]);
        assert!(record.withdrawn.is_empty());
    }

    #[test]
    fn an_expiry_withdraws_the_nodes_it_blocks() {
        let before = listing(&["beijing", "hongkong"], &[]);
        let after = listing(&["beijing"], &[("hongkong", EXPIRED)]);
        let record =
            Record::of_change(&product(), Some(&before), Some(&after), "t".into()).unwrap();
        assert_eq!(record.change, Change::Expired);
        assert_eq!(record.withdrawn, ["hongkong"]);
    }

    #[test]
    fn a_deletion_withdraws_everywhere_and_keeps_who_published() {
        let before = listing(
            &["beijing", "hongkong"],
            &[("macao", "NoRegimeForPublisher")],
        );
        let record = Record::of_change(&product(), Some(&before), None, "t".into()).unwrap();
        assert_eq!(record.change, Change::Deleted);
        assert_eq!(record.withdrawn, ["beijing", "hongkong"]);
        assert!(record.listing.visible.is_empty() && record.listing.blocked.is_empty());
        assert_eq!(record.listing.publisher, "shanghai");
    }

    #[test]
    fn a_leaf_reads_back_as_the_same_record() {
        let record =
            Record::of_change(&product(), None, Some(&listing(&["a"], &[])), "t".into()).unwrap();
        let back: Record = serde_json::from_str(&record.to_leaf()).unwrap();
        assert_eq!(back, record);
    }
}
