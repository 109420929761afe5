//! The links a topology mode implies: a full mesh, or hubs meshed with each
//! other and every spoke linked to its N nearest hubs by great-circle distance.

use std::cmp::Ordering;
use std::collections::BTreeSet;

/// A point on the globe, in degrees.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GeoPoint {
    pub latitude: f64,
    pub longitude: f64,
}

/// Great-circle distance in kilometres (haversine, mean Earth radius).
pub fn great_circle_km(a: GeoPoint, b: GeoPoint) -> f64 {
    const EARTH_RADIUS_KM: f64 = 6371.0088;
    let (lat1, lat2) = (a.latitude.to_radians(), b.latitude.to_radians());
    let dlat = lat2 - lat1;
    let dlon = (b.longitude - a.longitude).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// An unordered pair of node names, stored smaller name first.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkPair(String, String);

impl LinkPair {
    /// The pair of `a` and `b` (order does not matter). `None` for a self-loop.
    pub fn new(a: &str, b: &str) -> Option<Self> {
        match a.cmp(b) {
            Ordering::Less => Some(LinkPair(a.to_owned(), b.to_owned())),
            Ordering::Greater => Some(LinkPair(b.to_owned(), a.to_owned())),
            Ordering::Equal => None,
        }
    }

    pub fn first(&self) -> &str {
        &self.0
    }

    pub fn second(&self) -> &str {
        &self.1
    }
}

/// The topology a federation asks for, in plain terms.
#[derive(Clone, Debug, PartialEq)]
pub enum WantedTopology {
    /// The user's links only.
    Manual,
    /// Every pair of members.
    FullMesh,
    /// Hubs meshed; each spoke linked to its `spoke_uplinks` nearest hubs.
    HubAndSpoke {
        hubs: Vec<String>,
        spoke_uplinks: usize,
    },
}

/// The `k` hubs nearest to `spoke`, nearest first. A hub (or spoke) without a
/// location counts as infinitely far; ties go to the smaller name, so the choice
/// is deterministic.
pub fn nearest_hubs<'a>(
    spoke: Option<GeoPoint>,
    hubs: &[(&'a str, Option<GeoPoint>)],
    k: usize,
) -> Vec<&'a str> {
    let mut ranked: Vec<(f64, &str)> = hubs
        .iter()
        .map(|&(name, location)| {
            let distance = match (spoke, location) {
                (Some(s), Some(h)) => great_circle_km(s, h),
                _ => f64::INFINITY,
            };
            (distance, name)
        })
        .collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)));
    ranked.dedup_by(|a, b| a.1 == b.1);
    ranked.into_iter().take(k).map(|(_, name)| name).collect()
}

/// The links `topology` implies for `members` (name, location). Hubs that are not
/// members are ignored: the caller reports them.
pub fn wanted_links(
    topology: &WantedTopology,
    members: &[(String, Option<GeoPoint>)],
) -> BTreeSet<LinkPair> {
    let mut links = BTreeSet::new();
    match topology {
        WantedTopology::Manual => {}
        WantedTopology::FullMesh => {
            for (i, (a, _)) in members.iter().enumerate() {
                for (b, _) in &members[i + 1..] {
                    links.extend(LinkPair::new(a, b));
                }
            }
        }
        WantedTopology::HubAndSpoke {
            hubs,
            spoke_uplinks,
        } => {
            let hub_points: Vec<(&str, Option<GeoPoint>)> = members
                .iter()
                .filter(|(name, _)| hubs.contains(name))
                .map(|(name, location)| (name.as_str(), *location))
                .collect();
            for (i, (a, _)) in hub_points.iter().enumerate() {
                for (b, _) in &hub_points[i + 1..] {
                    links.extend(LinkPair::new(a, b));
                }
            }
            for (spoke, location) in members.iter().filter(|(name, _)| !hubs.contains(name)) {
                for hub in nearest_hubs(*location, &hub_points, *spoke_uplinks) {
                    links.extend(LinkPair::new(spoke, hub));
                }
            }
        }
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BEIJING: GeoPoint = GeoPoint {
        latitude: 39.90,
        longitude: 116.40,
    };
    const SHANGHAI: GeoPoint = GeoPoint {
        latitude: 31.23,
        longitude: 121.47,
    };
    const GUANGZHOU: GeoPoint = GeoPoint {
        latitude: 23.13,
        longitude: 113.26,
    };
    const CHENGDU: GeoPoint = GeoPoint {
        latitude: 30.57,
        longitude: 104.07,
    };

    #[test]
    fn beijing_to_shanghai_is_about_1070_km() {
        let d = great_circle_km(BEIJING, SHANGHAI);
        assert!((1060.0..1080.0).contains(&d), "{d}");
        assert_eq!(great_circle_km(BEIJING, BEIJING), 0.0);
    }

    #[test]
    fn spokes_link_to_their_nearest_hubs() {
        let hubs = [
            ("beijing", Some(BEIJING)),
            ("shanghai", Some(SHANGHAI)),
            ("guangzhou", Some(GUANGZHOU)),
            ("chengdu", Some(CHENGDU)),
        ];
        let shenzhen = GeoPoint {
            latitude: 22.53,
            longitude: 113.90,
        };
        assert_eq!(
            nearest_hubs(Some(shenzhen), &hubs, 2),
            vec!["guangzhou", "shanghai"]
        );
        let tianjin = GeoPoint {
            latitude: 39.08,
            longitude: 117.20,
        };
        assert_eq!(nearest_hubs(Some(tianjin), &hubs, 1), vec!["beijing"]);
        // Without a location a spoke still gets its uplinks, by hub name.
        assert_eq!(nearest_hubs(None, &hubs, 2), vec!["beijing", "chengdu"]);
    }

    #[test]
    fn hub_and_spoke_meshes_hubs_and_uplinks_spokes() {
        let members: Vec<(String, Option<GeoPoint>)> = vec![
            ("beijing".into(), Some(BEIJING)),
            ("shanghai".into(), Some(SHANGHAI)),
            ("guangzhou".into(), Some(GUANGZHOU)),
            (
                "shenzhen".into(),
                Some(GeoPoint {
                    latitude: 22.53,
                    longitude: 113.90,
                }),
            ),
        ];
        let topology = WantedTopology::HubAndSpoke {
            hubs: vec![
                "beijing".into(),
                "shanghai".into(),
                "guangzhou".into(),
                "lhasa".into(),
            ],
            spoke_uplinks: 2,
        };
        let links = wanted_links(&topology, &members);
        let expected: BTreeSet<LinkPair> = [
            ("beijing", "shanghai"),
            ("beijing", "guangzhou"),
            ("guangzhou", "shanghai"),
            ("guangzhou", "shenzhen"),
            ("shanghai", "shenzhen"),
        ]
        .iter()
        .map(|(a, b)| LinkPair::new(a, b).unwrap())
        .collect();
        assert_eq!(links, expected);
        assert!(wanted_links(&WantedTopology::Manual, &members).is_empty());
    }

    fn point() -> impl Strategy<Value = GeoPoint> {
        (-90.0..=90.0f64, -180.0..=180.0f64).prop_map(|(latitude, longitude)| GeoPoint {
            latitude,
            longitude,
        })
    }

    fn members(max: usize) -> impl Strategy<Value = Vec<(String, Option<GeoPoint>)>> {
        proptest::collection::btree_map(
            "[a-z]{1,6}",
            proptest::option::weighted(0.9, point()),
            0..max,
        )
        .prop_map(|m| m.into_iter().collect())
    }

    proptest! {
        #[test]
        fn distance_is_a_metric(a in point(), b in point(), c in point()) {
            let ab = great_circle_km(a, b);
            prop_assert!((ab - great_circle_km(b, a)).abs() < 1e-6);
            prop_assert!((0.0..=20_016.0).contains(&ab));
            prop_assert!(ab <= great_circle_km(a, c) + great_circle_km(c, b) + 1e-6);
        }

        #[test]
        fn full_mesh_links_every_pair_once(members in members(20)) {
            let links = wanted_links(&WantedTopology::FullMesh, &members);
            let n = members.len();
            prop_assert_eq!(links.len(), n * n.saturating_sub(1) / 2);
        }

        #[test]
        fn hub_and_spoke_matches_brute_force(
            members in members(25),
            hub_picks in proptest::collection::vec(any::<prop::sample::Index>(), 1..5),
            uplinks in 1usize..4,
            rotate in any::<prop::sample::Index>(),
        ) {
            prop_assume!(!members.is_empty());
            let hubs: Vec<String> = hub_picks.iter().map(|i| members[i.index(members.len())].0.clone()).collect();
            let topology = WantedTopology::HubAndSpoke { hubs: hubs.clone(), spoke_uplinks: uplinks };
            let links = wanted_links(&topology, &members);

            // Member order does not matter.
            let mut rotated = members.clone();
            rotated.rotate_left(rotate.index(members.len()));
            prop_assert_eq!(&wanted_links(&topology, &rotated), &links);

            let hub_set: BTreeSet<&str> = hubs.iter().map(String::as_str).collect();
            for (spoke, location) in members.iter().filter(|(n, _)| !hub_set.contains(n.as_str())) {
                let uplinked: BTreeSet<&str> = links
                    .iter()
                    .filter_map(|p| if p.first() == spoke { Some(p.second()) } else if p.second() == spoke { Some(p.first()) } else { None })
                    .collect();
                prop_assert_eq!(uplinked.len(), uplinks.min(hub_set.len()));
                prop_assert!(uplinked.iter().all(|h| hub_set.contains(h)), "spokes link only to hubs");
                // Brute force: no unchosen hub is strictly nearer than a chosen one.
                let distance = |h: &str| {
                    let hub_location = members.iter().find(|(n, _)| n == h).unwrap().1;
                    match (location, hub_location) { (Some(s), Some(l)) => great_circle_km(*s, l), _ => f64::INFINITY }
                };
                let farthest_chosen = uplinked.iter().map(|h| distance(h)).fold(0.0, f64::max);
                for h in hub_set.iter().filter(|h| !uplinked.contains(*h)) {
                    prop_assert!(distance(h) >= farthest_chosen);
                }
            }
            // Hubs are meshed with each other.
            for (i, a) in hub_set.iter().enumerate() {
                for b in hub_set.iter().skip(i + 1) {
                    prop_assert!(links.contains(&LinkPair::new(a, b).unwrap()));
                }
            }
        }
    }
}
