//! Every label flowfed sets or selects on, in one place: the controllers, the
//! chart's selectors and the docs spell them the same way.

/// Label marking objects flowfed manages, in the hub and in member clusters.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`] on flowfed's objects.
pub const MANAGED_BY: &str = "flowfed";
/// Label on a home namespace naming its node.
pub const NODE_LABEL: &str = "flowfed.io/node";
/// Label naming the node that published the product an entry lists.
pub const PUBLISHER_NODE_LABEL: &str = "flowfed.io/publisher-node";
/// Label holding the uid of the product an entry lists.
pub const PRODUCT_UID_LABEL: &str = "flowfed.io/product-uid";
/// Label naming the node whose catalog view holds the entry.
pub const TARGET_NODE_LABEL: &str = "flowfed.io/target-node";
/// Label set on links a Federation created, naming that federation.
pub const FEDERATION_LABEL: &str = "flowfed.io/federation";
