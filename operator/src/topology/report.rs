//! The interconnection report of a federation, from plain views of its nodes
//! and links: what the Federation status and the federation metrics show.

use std::collections::{BTreeMap, BTreeSet};

use super::graph::{Graph, analyse};

/// A member node as the report needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeView {
    pub name: String,
    pub province: String,
    pub ready: bool,
}

/// A link between member nodes (duplicates already removed).
#[derive(Clone, Debug, PartialEq)]
pub struct LinkView {
    pub name: String,
    pub from: String,
    pub to: String,
    /// Carrying traffic (Up or Degraded).
    pub up: bool,
}

/// What a federation reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NetworkReport {
    pub nodes_total: usize,
    pub nodes_ready: usize,
    pub links_total: usize,
    pub links_up: usize,
    /// Components of the graph of all member nodes and their up links, each a
    /// sorted list of names, ordered by first name. A node that is not Ready has
    /// no up links, so it is a component of its own.
    pub components: Vec<Vec<String>>,
    /// Nodes whose loss would split the network, sorted.
    pub critical_nodes: Vec<String>,
    /// Links whose loss would split the network, sorted by name.
    pub critical_links: Vec<String>,
    /// Distinct provinces with a Ready node.
    pub provinces_covered: usize,
    /// Every node Ready and all in one component (and at least one node).
    pub interconnected: bool,
}

/// Builds the report. Links with an end outside `nodes` are ignored.
pub fn report(nodes: &[NodeView], links: &[LinkView]) -> NetworkReport {
    let mut sorted: Vec<&NodeView> = nodes.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    sorted.dedup_by(|a, b| a.name == b.name);
    let index: BTreeMap<&str, usize> = sorted
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();

    let member_links: Vec<&LinkView> = links
        .iter()
        .filter(|l| index.contains_key(l.from.as_str()) && index.contains_key(l.to.as_str()))
        .collect();
    let mut graph = Graph::new(sorted.len());
    let mut edge_names = Vec::new();
    for link in member_links.iter().filter(|l| l.up) {
        graph.add_edge(index[link.from.as_str()], index[link.to.as_str()]);
        edge_names.push(link.name.clone());
    }
    let analysis = analyse(&graph);
    let name_of = |i: usize| sorted[i].name.clone();

    let nodes_ready = sorted.iter().filter(|n| n.ready).count();
    let mut critical_links: Vec<String> = analysis
        .bridges
        .iter()
        .map(|&e| edge_names[e].clone())
        .collect();
    critical_links.sort();
    let provinces: BTreeSet<&str> = sorted
        .iter()
        .filter(|n| n.ready)
        .map(|n| n.province.as_str())
        .collect();
    NetworkReport {
        nodes_total: sorted.len(),
        nodes_ready,
        links_total: member_links.len(),
        links_up: member_links.iter().filter(|l| l.up).count(),
        components: analysis
            .components
            .iter()
            .map(|c| c.iter().map(|&i| name_of(i)).collect())
            .collect(),
        critical_nodes: analysis
            .articulation_points
            .iter()
            .map(|&i| name_of(i))
            .collect(),
        critical_links,
        provinces_covered: provinces.len(),
        interconnected: !sorted.is_empty()
            && nodes_ready == sorted.len()
            && analysis.components.len() == 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, province: &str, ready: bool) -> NodeView {
        NodeView {
            name: name.into(),
            province: province.into(),
            ready,
        }
    }

    fn link(from: &str, to: &str, up: bool) -> LinkView {
        LinkView {
            name: format!("{from}--{to}"),
            from: from.into(),
            to: to.into(),
            up,
        }
    }

    #[test]
    fn a_dark_node_partitions_the_ring_and_exposes_critical_nodes() {
        let names = ["a", "b", "c", "d"];
        let mut nodes: Vec<_> = names
            .iter()
            .map(|n| node(n, &format!("CN-{}", n.to_uppercase()), true))
            .collect();
        let ring = |up_except: &str| {
            (0..4)
                .map(|i| {
                    let (f, t) = (names[i], names[(i + 1) % 4]);
                    link(f, t, f != up_except && t != up_except)
                })
                .collect::<Vec<_>>()
        };
        let healthy = report(&nodes, &ring(""));
        assert!(healthy.interconnected);
        assert_eq!(healthy.components.len(), 1);
        assert!(healthy.critical_nodes.is_empty());
        assert_eq!(healthy.provinces_covered, 4);

        nodes[0].ready = false;
        let broken = report(&nodes, &ring("a"));
        assert!(!broken.interconnected);
        assert_eq!(
            broken.components,
            vec![
                vec!["a".to_string()],
                vec!["b".into(), "c".into(), "d".into()]
            ]
        );
        assert_eq!(broken.critical_nodes, vec!["c".to_string()]);
        assert_eq!(
            broken.critical_links,
            vec!["b--c".to_string(), "c--d".to_string()]
        );
        assert_eq!((broken.links_total, broken.links_up), (4, 2));
        assert_eq!(broken.provinces_covered, 3);
    }

    #[test]
    fn links_to_non_members_are_ignored_and_an_empty_federation_is_not_interconnected() {
        let nodes = vec![node("a", "CN-SH", true)];
        let r = report(&nodes, &[link("a", "outsider", true)]);
        assert_eq!(r.links_total, 0);
        assert!(
            r.interconnected,
            "a single ready node is trivially interconnected"
        );
        assert!(!report(&[], &[]).interconnected);
    }
}
