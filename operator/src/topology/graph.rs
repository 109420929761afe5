//! Components, articulation points and bridges in one iterative DFS (Tarjan's
//! low-link), so a 1,000-node network costs microseconds and cannot overflow
//! the stack.

use std::collections::BTreeSet;

/// An undirected multigraph over nodes `0..node_count`.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    node_count: usize,
    /// (a, b) per edge; an edge's index is its position.
    edges: Vec<(usize, usize)>,
}

impl Graph {
    pub fn new(node_count: usize) -> Self {
        Graph {
            node_count,
            edges: Vec::new(),
        }
    }

    /// Adds an edge and returns its index. Panics if an end is out of range.
    pub fn add_edge(&mut self, a: usize, b: usize) -> usize {
        assert!(
            a < self.node_count && b < self.node_count,
            "edge ({a}, {b}) outside 0..{}",
            self.node_count
        );
        self.edges.push((a, b));
        self.edges.len() - 1
    }

    pub fn node_count(&self) -> usize {
        self.node_count
    }

    pub fn edges(&self) -> &[(usize, usize)] {
        &self.edges
    }
}

/// What the analysis found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Analysis {
    /// Components as sorted node lists, ordered by their smallest node.
    pub components: Vec<Vec<usize>>,
    /// Nodes whose removal increases the number of components, sorted.
    pub articulation_points: BTreeSet<usize>,
    /// Indices of edges whose removal increases the number of components, sorted.
    pub bridges: BTreeSet<usize>,
}

/// Analyses `graph`: components, articulation points and bridges.
pub fn analyse(graph: &Graph) -> Analysis {
    let n = graph.node_count;
    // Adjacency as (neighbour, edge index); self-loops are dropped because they
    // neither connect nor protect anything.
    let mut adjacency: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
    for (index, &(a, b)) in graph.edges.iter().enumerate() {
        if a != b {
            adjacency[a].push((b, index));
            adjacency[b].push((a, index));
        }
    }

    const UNVISITED: usize = usize::MAX;
    let mut discovery = vec![UNVISITED; n];
    let mut low = vec![0usize; n];
    let mut analysis = Analysis::default();
    let mut time = 0usize;

    for root in 0..n {
        if discovery[root] != UNVISITED {
            continue;
        }
        let mut component = vec![root];
        discovery[root] = time;
        low[root] = time;
        time += 1;
        let mut root_children = 0usize;
        // Frames: (node, edge index used to enter it, next adjacency position).
        let mut stack: Vec<(usize, usize, usize)> = vec![(root, usize::MAX, 0)];
        while let Some(frame) = stack.last_mut() {
            let (node, via_edge, next) = *frame;
            if next < adjacency[node].len() {
                frame.2 += 1;
                let (neighbour, edge) = adjacency[node][next];
                if edge == via_edge {
                    continue; // the edge we came in on (a parallel edge has another index)
                }
                if discovery[neighbour] == UNVISITED {
                    discovery[neighbour] = time;
                    low[neighbour] = time;
                    time += 1;
                    component.push(neighbour);
                    if node == root {
                        root_children += 1;
                    }
                    stack.push((neighbour, edge, 0));
                } else {
                    low[node] = low[node].min(discovery[neighbour]);
                }
            } else {
                stack.pop();
                if let Some(&(parent, _, _)) = stack.last() {
                    low[parent] = low[parent].min(low[node]);
                    if low[node] > discovery[parent] {
                        analysis.bridges.insert(via_edge);
                    }
                    if parent != root && low[node] >= discovery[parent] {
                        analysis.articulation_points.insert(parent);
                    }
                }
            }
        }
        if root_children > 1 {
            analysis.articulation_points.insert(root);
        }
        component.sort_unstable();
        analysis.components.push(component);
    }
    analysis
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn graph(n: usize, edges: &[(usize, usize)]) -> Graph {
        let mut g = Graph::new(n);
        for &(a, b) in edges {
            g.add_edge(a, b);
        }
        g
    }

    /// Brute force: components by repeated flood fill, ignoring `skip_node` and `skip_edge`.
    fn component_count(g: &Graph, skip_node: Option<usize>, skip_edge: Option<usize>) -> usize {
        let mut seen = vec![false; g.node_count()];
        let mut count = 0;
        for start in 0..g.node_count() {
            if seen[start] || Some(start) == skip_node {
                continue;
            }
            count += 1;
            seen[start] = true;
            let mut todo = vec![start];
            while let Some(x) = todo.pop() {
                for (i, &(a, b)) in g.edges().iter().enumerate() {
                    if Some(i) == skip_edge || Some(a) == skip_node || Some(b) == skip_node {
                        continue;
                    }
                    for (from, to) in [(a, b), (b, a)] {
                        if from == x && !seen[to] {
                            seen[to] = true;
                            todo.push(to);
                        }
                    }
                }
            }
        }
        count
    }

    fn brute_force(g: &Graph) -> (usize, BTreeSet<usize>, BTreeSet<usize>) {
        let base = component_count(g, None, None);
        // Removing v leaves its component in k pieces: count = base - 1 + k, and v is
        // critical exactly when k >= 2 (an isolated v gives k = 0).
        let articulation = (0..g.node_count())
            .filter(|&v| component_count(g, Some(v), None) > base)
            .collect();
        let bridges = (0..g.edges().len())
            .filter(|&e| component_count(g, None, Some(e)) > base)
            .collect();
        (base, articulation, bridges)
    }

    #[test]
    fn ring_has_no_weak_points_until_it_is_cut() {
        let ring = graph(6, &[(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 0)]);
        let a = analyse(&ring);
        assert_eq!(a.components, vec![vec![0, 1, 2, 3, 4, 5]]);
        assert!(a.articulation_points.is_empty());
        assert!(a.bridges.is_empty());

        // Node 0 goes dark: its two links are gone, the rest is a path 1-2-3-4-5.
        let cut = graph(6, &[(1, 2), (2, 3), (3, 4), (4, 5)]);
        let a = analyse(&cut);
        assert_eq!(a.components, vec![vec![0], vec![1, 2, 3, 4, 5]]);
        assert_eq!(a.articulation_points, BTreeSet::from([2, 3, 4]));
        assert_eq!(a.bridges, BTreeSet::from([0, 1, 2, 3]));
    }

    #[test]
    fn parallel_links_are_not_bridges_and_self_loops_connect_nothing() {
        let g = graph(3, &[(0, 1), (0, 1), (1, 2), (2, 2)]);
        let a = analyse(&g);
        assert_eq!(a.bridges, BTreeSet::from([2]));
        assert_eq!(a.articulation_points, BTreeSet::from([1]));
        let loops_only = graph(2, &[(0, 0), (1, 1)]);
        assert_eq!(analyse(&loops_only).components.len(), 2);
    }

    #[test]
    fn star_centre_is_the_only_critical_node() {
        let star = graph(5, &[(0, 1), (0, 2), (0, 3), (0, 4)]);
        let a = analyse(&star);
        assert_eq!(a.articulation_points, BTreeSet::from([0]));
        assert_eq!(a.bridges.len(), 4);
    }

    #[test]
    fn thousand_node_path_does_not_overflow_the_stack() {
        let n = 1000;
        let edges: Vec<_> = (0..n - 1).map(|i| (i, i + 1)).collect();
        let a = analyse(&graph(n, &edges));
        assert_eq!(a.components.len(), 1);
        assert_eq!(a.articulation_points.len(), n - 2);
        assert_eq!(a.bridges.len(), n - 1);
    }

    fn arbitrary_graph(max_nodes: usize, max_edges: usize) -> impl Strategy<Value = Graph> {
        (1..=max_nodes).prop_flat_map(move |n| {
            proptest::collection::vec((0..n, 0..n), 0..=max_edges)
                .prop_map(move |edges| graph(n, &edges))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn matches_brute_force_on_random_multigraphs(g in arbitrary_graph(12, 24)) {
            let a = analyse(&g);
            let (components, articulation, bridges) = brute_force(&g);
            prop_assert_eq!(a.components.len(), components);
            prop_assert_eq!(&a.articulation_points, &articulation);
            prop_assert_eq!(&a.bridges, &bridges);
            // Components partition the nodes.
            let mut all: Vec<usize> = a.components.concat();
            all.sort_unstable();
            prop_assert_eq!(all, (0..g.node_count()).collect::<Vec<_>>());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(8))]

        #[test]
        fn large_sparse_graphs_match_brute_force_component_counts(g in arbitrary_graph(1000, 1500)) {
            let a = analyse(&g);
            prop_assert_eq!(a.components.len(), component_count(&g, None, None));
            // Spot-check a few bridges and articulation points by removal.
            for &e in a.bridges.iter().take(3) {
                prop_assert!(component_count(&g, None, Some(e)) > a.components.len());
            }
        }
    }
}
