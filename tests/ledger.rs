//! The trusted-sharing ledger on a real control plane, with `flowfed run` as
//! a real process under the chart's identity and key: every listing change is
//! recorded once across kills; tampering with stored blocks fails `flowfed
//! ledger verify` and names what; a log rewritten with the real key is
//! refused by every witness; an expiry shows in a product's history.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use flowfed::api::{DataFlowNode, LedgerBlock, LedgerCheckpoint};
use flowfed::ledger::checkpoint::LedgerKey;
use flowfed::ledger::log::Log;
use flowfed::ledger::record::{Change, Record};
use flowfed_tests::{Catalog, OPERATOR_NAMESPACE, OperatorProcess, flowfed_binary, has_condition};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

/// The chart's key Secret (release `flowfed`).
const KEY_SECRET: &str = "flowfed-ledger-key";
const ORIGIN: &str = "flowfed.io/ledger";

fn start(cat: &Catalog) -> OperatorProcess {
    let kubeconfig = cat.plane.operator_kubeconfig().unwrap();
    OperatorProcess::start(
        &kubeconfig,
        &[
            "--ledger-key-secret",
            KEY_SECRET,
            "--lease-namespace",
            OPERATOR_NAMESPACE,
            "--ledger-witness-interval",
            "1s",
        ],
    )
    .unwrap()
}

fn blocks(cat: &Catalog) -> Api<LedgerBlock> {
    Api::namespaced(cat.client.clone(), OPERATOR_NAMESPACE)
}

/// Every stored record, in order.
async fn records(cat: &Catalog) -> Vec<Record> {
    let mut stored = blocks(cat)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    stored.sort_by_key(|b| b.spec.index);
    stored
        .iter()
        .flat_map(|b| b.spec.records.iter())
        .map(|leaf| serde_json::from_str(leaf).unwrap())
        .collect()
}

async fn tree_size(cat: &Catalog) -> u64 {
    let stored = blocks(cat)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    stored.iter().map(|b| b.spec.tree_size).max().unwrap_or(0)
}

async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `flowfed ledger ARGS` against the hub as its administrator.
fn ledger(cat: &Catalog, args: &[&str]) -> Output {
    std::process::Command::new(flowfed_binary())
        .arg("ledger")
        .args(args)
        .args(["--kubeconfig", &cat.plane.kubeconfig.display().to_string()])
        .args(["-n", OPERATOR_NAMESPACE])
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The hub's three nodes: two on the mainland, one in Hong Kong.
async fn network(cat: &Catalog) -> [String; 3] {
    [
        cat.add_node("beijing", "CN-BJ", "CN", json!({})).await,
        cat.add_node("shanghai", "CN-SH", "CN", json!({})).await,
        cat.add_node("hongkong", "HK-HK", "HK", json!({})).await,
    ]
}

/// The ledger's witnesses hold tree size `size` in every node's namespace.
async fn witnessed_at(cat: &Catalog, nodes: &[String], size: u64) -> bool {
    for node in nodes {
        let api: Api<LedgerCheckpoint> =
            Api::namespaced(cat.client.clone(), &format!("dfn-{node}"));
        match api.get_opt(LedgerCheckpoint::NAME).await.unwrap() {
            Some(c) if c.spec.tree_size == size => {}
            _ => return false,
        }
    }
    true
}

#[tokio::test]
async fn every_listing_change_is_recorded_once_across_three_kills() {
    const PRODUCTS: usize = 1000;
    let cat = Catalog::new().await;
    let nodes = network(&cat).await;
    let mut operator = start(&cat);
    let publishing = {
        let products = cat.products("beijing");
        let namespace = format!("dfn-{}", nodes[0]);
        tokio::spawn(async move {
            futures::future::join_all((0..PRODUCTS).map(|i| {
                let products = products.clone();
                let namespace = namespace.clone();
                async move {
                    let manifest = json!({
                        "apiVersion": "flowfed.io/v1alpha1", "kind": "DataProduct",
                        "metadata": {"name": format!("p{i:04}"), "namespace": namespace},
                        "spec": {"title": format!("Product {i}"), "classification": "Public"},
                    });
                    products
                        .create(
                            &PostParams::default(),
                            &serde_json::from_value(manifest).unwrap(),
                        )
                        .await
                        .unwrap();
                }
            }))
            .await;
        })
    };
    // Killed (SIGKILL: nothing flushed) three times while the sync runs.
    for kill in 0..3 {
        let before = tree_size(&cat).await;
        wait_until(
            "some records stored before the kill",
            Duration::from_secs(120),
            || async { tree_size(&cat).await > before },
        )
        .await;
        operator.child.kill().unwrap();
        operator.child.wait().unwrap();
        eprintln!("kill {kill}: at tree size {}", tree_size(&cat).await);
        operator = start(&cat);
    }
    publishing.await.unwrap();
    wait_until(
        "every product recorded",
        Duration::from_secs(300),
        || async { tree_size(&cat).await >= PRODUCTS as u64 },
    )
    .await;
    // Settle: nothing more should come.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let records = records(&cat).await;
    let mut by_product: BTreeMap<String, Vec<&Record>> = BTreeMap::new();
    for record in &records {
        by_product
            .entry(record.product.name.clone())
            .or_default()
            .push(record);
    }
    assert_eq!(by_product.len(), PRODUCTS, "one product's records each");
    for (name, history) in &by_product {
        assert_eq!(history[0].change, Change::Listed, "{name}: {history:?}");
        assert_eq!(
            history.len(),
            1,
            "{name} recorded more than once: {history:?}"
        );
        assert_eq!(history[0].listing.visible.len(), 3, "{name}: {history:?}");
    }
    let verified = ledger(&cat, &["verify"]);
    assert!(verified.status.success(), "{}", text(&verified));
    drop(operator);
}

#[tokio::test]
async fn tampering_with_stored_blocks_fails_verify_and_names_what() {
    let cat = Catalog::new().await;
    let nodes = network(&cat).await;
    let operator = start(&cat);
    // Two waves, so there are at least two blocks.
    for wave in 0..2 {
        for i in 0..3 {
            cat.publish(
                "shanghai",
                &format!("w{wave}-{i}"),
                json!({"title": "T", "classification": "Public"}),
            )
            .await;
        }
        let expected = 3 * (wave + 1);
        wait_until("the wave recorded", Duration::from_secs(60), || async {
            tree_size(&cat).await >= expected
        })
        .await;
    }
    wait_until(
        "every witness holds the head",
        Duration::from_secs(60),
        || async { witnessed_at(&cat, &nodes, tree_size(&cat).await).await },
    )
    .await;
    drop(operator);
    let verified = ledger(&cat, &["verify"]);
    assert!(verified.status.success(), "{}", text(&verified));
    assert!(
        text(&verified).contains("consistent at tree size 6"),
        "{}",
        text(&verified)
    );
    let original = blocks(&cat)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert!(original.len() >= 2, "two blocks at least");
    let restore = || async {
        for block in blocks(&cat).list(&ListParams::default()).await.unwrap() {
            blocks(&cat)
                .delete(&block.name_any(), &DeleteParams::default())
                .await
                .unwrap();
        }
        for block in &original {
            let fresh = LedgerBlock::new(&block.name_any(), block.spec.clone());
            blocks(&cat)
                .create(&PostParams::default(), &fresh)
                .await
                .unwrap();
        }
    };
    let api = blocks(&cat);
    // Replaces the stored block's spec (whatever its current version).
    let replace = |block: LedgerBlock| {
        let api = api.clone();
        async move {
            let name = block.name_any();
            let mut current = api.get(&name).await.unwrap();
            current.spec = block.spec;
            api.replace(&name, &PostParams::default(), &current)
                .await
                .unwrap();
        }
    };
    let block0 = blocks(&cat).get(&LedgerBlock::name_of(0)).await.unwrap();

    // 1. One field of one record edited.
    let mut edited = block0.clone();
    edited.spec.records[0] = edited.spec.records[0].replace(
        "\"classification\":\"Public\"",
        "\"classification\":\"CoreData\"",
    );
    assert_ne!(edited.spec.records, block0.spec.records);
    replace(edited).await;
    let out = ledger(&cat, &["verify"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("block 0 (records 0.."),
        "{}",
        text(&out)
    );
    restore().await;
    assert!(ledger(&cat, &["verify"]).status.success());

    // 2. A block deleted.
    blocks(&cat)
        .delete(&LedgerBlock::name_of(0), &DeleteParams::default())
        .await
        .unwrap();
    let out = ledger(&cat, &["verify"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("block 0 is missing"), "{}", text(&out));
    restore().await;

    // 3. Blocks reordered: the first two swap places.
    let block1 = blocks(&cat).get(&LedgerBlock::name_of(1)).await.unwrap();
    let (mut first, mut second) = (block0.clone(), block1.clone());
    first.spec = block1.spec.clone();
    first.spec.index = 0;
    second.spec = block0.spec.clone();
    second.spec.index = 1;
    replace(first).await;
    replace(second).await;
    let out = ledger(&cat, &["verify"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("block 0 starts at record"),
        "{}",
        text(&out)
    );
    restore().await;

    // 4. The signing key replaced: the last block re-signed with another key.
    let other = LedgerKey::from_pem(ORIGIN, &LedgerKey::generate_pem()).unwrap();
    let last_index = original.iter().map(|b| b.spec.index).max().unwrap();
    let mut resigned = blocks(&cat)
        .get(&LedgerBlock::name_of(last_index))
        .await
        .unwrap();
    let root = flowfed::ledger::tree::decode(&resigned.spec.root_hash).unwrap();
    resigned.spec.checkpoint = other.sign(resigned.spec.tree_size, root);
    resigned.spec.verifier_key = other.verifier_key().to_owned();
    replace(resigned).await;
    let out = ledger(&cat, &["verify"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains(&format!(
            "block {last_index}: the checkpoint is not signed by"
        )),
        "{}",
        text(&out)
    );
    restore().await;
    assert!(ledger(&cat, &["verify"]).status.success());
}

#[tokio::test]
async fn a_log_rewritten_with_the_real_key_is_refused_by_every_witness() {
    let cat = Catalog::new().await;
    let nodes = network(&cat).await;
    let operator = start(&cat);
    for i in 0..3 {
        cat.publish(
            "beijing",
            &format!("r{i}"),
            json!({"title": "T", "classification": "Public"}),
        )
        .await;
    }
    wait_until(
        "three records witnessed",
        Duration::from_secs(60),
        || async {
            tree_size(&cat).await >= 3 && witnessed_at(&cat, &nodes, tree_size(&cat).await).await
        },
    )
    .await;
    drop(operator);

    // The hub administrator reads the key and rewrites history consistently:
    // product r0 was never visible at Hong Kong.
    let secret = Api::<Secret>::namespaced(cat.client.clone(), OPERATOR_NAMESPACE)
        .get(KEY_SECRET)
        .await
        .unwrap();
    let pem = String::from_utf8(secret.data.unwrap()["signing-key"].0.clone()).unwrap();
    let key = LedgerKey::from_pem(ORIGIN, &pem).unwrap();
    let mut leaves: Vec<String> = records(&cat)
        .await
        .into_iter()
        .map(|mut record| {
            if record.product.name == "r0" {
                record
                    .listing
                    .visible
                    .retain(|v| !v.node.ends_with("hongkong"));
                record.became_visible.retain(|n| !n.ends_with("hongkong"));
            }
            record.to_leaf()
        })
        .collect();
    for block in blocks(&cat).list(&ListParams::default()).await.unwrap() {
        blocks(&cat)
            .delete(&block.name_any(), &DeleteParams::default())
            .await
            .unwrap();
    }
    let mut log = Log::default();
    let (spec, tree) = log.seal(std::mem::take(&mut leaves), &key);
    log.stored(tree);
    let forged = LedgerBlock::new(&LedgerBlock::name_of(spec.index), spec);
    blocks(&cat)
        .create(&PostParams::default(), &forged)
        .await
        .unwrap();
    // The forged log verifies on its own, with the real key.
    let out = ledger(&cat, &["verify"]);
    assert!(
        !out.status.success(),
        "the witnesses disagree: {}",
        text(&out)
    );

    // The operator restarts on the forged log, and a new release is offered
    // to the witnesses: every one refuses it.
    let operator = start(&cat);
    cat.publish(
        "beijing",
        "after",
        json!({"title": "T", "classification": "Public"}),
    )
    .await;
    let api: Api<DataFlowNode> = Api::all(cat.client.clone());
    for node in &nodes {
        wait_until("the witness refuses", Duration::from_secs(60), || async {
            let node = api.get(node).await.unwrap();
            has_condition(&node, "LedgerWitnessed", "False")
        })
        .await;
        let node = api.get(node).await.unwrap();
        let condition = flowfed_tests::condition(&node, "LedgerWitnessed").unwrap();
        assert_eq!(condition.reason, "LedgerInconsistent");
        assert!(
            condition.message.contains("rewritten"),
            "{}",
            condition.message
        );
    }
    let metrics = operator.get("/metrics").await.unwrap().1;
    for node in &nodes {
        let line = format!("flowfed_ledger_witness_inconsistent{{node=\"{node}\"}} 1");
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
    let out = ledger(&cat, &["verify"]);
    assert!(!out.status.success());
    for node in &nodes {
        assert!(
            text(&out).contains(&format!("witness {node} (hub, namespace dfn-{node})")),
            "{}",
            text(&out)
        );
    }
    // Nothing the witnesses hold was overwritten.
    let held: Api<LedgerCheckpoint> =
        Api::namespaced(cat.client.clone(), &format!("dfn-{}", nodes[0]));
    assert_eq!(
        held.get(LedgerCheckpoint::NAME)
            .await
            .unwrap()
            .spec
            .tree_size,
        3
    );
    drop(operator);
}

#[tokio::test]
async fn history_shows_when_an_expired_mechanism_withdrew_a_product_abroad() {
    let cat = Catalog::new().await;
    let [_, _, hongkong] = network(&cat).await;
    let operator = start(&cat);
    let until = k8s_openapi::jiff::Timestamp::now() + std::time::Duration::from_secs(12);
    let product = cat
        .publish(
            "beijing",
            "port-index",
            json!({"title": "Port index", "classification": "ImportantData", "crossBorder": {"mechanisms": [
                {"type": "SecurityAssessment", "reference": "SA-2026-0042", "issuedAt": "2026-01-01T00:00:00Z",
                 "validUntil": until.to_string(), "recipients": {"jurisdictions": ["HK"]}}]}}),
        )
        .await;
    cat.wait_listed(&product, &["beijing", "hongkong", "shanghai"])
        .await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    cat.wait_listed(&product, &["beijing", "shanghai"]).await;
    let name = format!("{}/port-index", product.namespace().unwrap());
    wait_until("the expiry recorded", Duration::from_secs(30), || async {
        records(&cat)
            .await
            .iter()
            .any(|r| r.change == Change::Expired)
    })
    .await;
    let out = ledger(&cat, &["history", &name]);
    assert!(out.status.success(), "{}", text(&out));
    let history = text(&out);
    assert!(
        history.contains(&format!(
            "+{hongkong} (SecurityAssessment: SecurityAssessment SA-2026-0042 until"
        )),
        "{history}"
    );
    assert!(history.contains("Expired"), "{history}");
    assert!(
        history.contains(&format!("-{hongkong} (MechanismExpired, rule 15)")),
        "{history}"
    );
    let proofs = ledger(&cat, &["prove", &name]);
    assert!(proofs.status.success(), "{}", text(&proofs));
    assert_eq!(
        text(&proofs).matches("proof:").count(),
        2,
        "{}",
        text(&proofs)
    );
    // An export verifies offline, also when it leaves earlier records out.
    let dir = std::env::temp_dir().join(flowfed_tests::unique("ledger-export"));
    std::fs::create_dir_all(&dir).unwrap();
    for (file, since) in [
        ("all.jsonl", None),
        ("since.jsonl", Some(until.to_string())),
    ] {
        let mut args = vec!["export"];
        if let Some(since) = &since {
            args.extend(["--since", since]);
        }
        let exported = ledger(&cat, &args);
        assert!(exported.status.success(), "{}", text(&exported));
        let path = dir.join(file);
        std::fs::write(&path, &exported.stdout).unwrap();
        let offline = verify_export(&path);
        assert!(offline.status.success(), "{file}: {}", text(&offline));
    }
    let full = std::fs::read_to_string(dir.join("all.jsonl")).unwrap();
    let since = std::fs::read_to_string(dir.join("since.jsonl")).unwrap();
    assert!(
        full.matches("\"type\":\"record\"").count() > since.matches("\"type\":\"record\"").count()
    );
    assert!(since.contains("\"type\":\"omitted\""));
    let _ = std::fs::remove_dir_all(&dir);
    drop(operator);
}

fn verify_export(path: &Path) -> Output {
    std::process::Command::new(flowfed_binary())
        .args(["ledger", "verify", "--from"])
        .arg(path)
        .output()
        .unwrap()
}
