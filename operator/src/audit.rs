//! `flowfed ledger`: what a regulator or a node runs against the ledger,
//! live through a kubeconfig or offline over an export. `verify` recomputes
//! every block, the tree, every signature and every witness's checkpoint;
//! `prove` prints inclusion proofs; `history` says where a product was
//! visible over time and why; `export` writes JSON Lines.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde::{Deserialize, Serialize};
use tlog_tiles::tlog::Hash;

use crate::api::{LedgerBlock, LedgerBlockSpec, LedgerCheckpoint, LedgerCheckpointSpec};
use crate::ledger::record::Record;
use crate::ledger::tree::{self, includes};
use crate::ledger::verify::{Finding, StoredBlock, VerifiedLog, verify_log, verify_witness};

/// Where the ledger is read from.
pub enum Source {
    /// The hub (kubeconfig from `--kubeconfig` or the environment), blocks in
    /// `namespace`, witnesses in every hub namespace and in each member given.
    Live {
        kubeconfig: Option<PathBuf>,
        namespace: String,
        members: Vec<PathBuf>,
    },
    /// A file `flowfed ledger export` wrote.
    Export(PathBuf),
}

/// One line of an export.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum Line {
    /// A record: its exact leaf, and the same parsed for reading.
    Record {
        index: u64,
        block: u64,
        leaf: String,
        record: Record,
    },
    /// A record before `--since`: only its leaf hash, so the tree still verifies.
    Omitted {
        index: u64,
        block: u64,
        #[serde(rename = "leafHash")]
        leaf_hash: String,
    },
    /// A block's end: its name, tree head and signed checkpoint.
    Block { name: String, spec: LedgerBlockSpec },
    /// A witness's checkpoint.
    Witness {
        witness: String,
        spec: LedgerCheckpointSpec,
    },
}

/// The ledger as read: blocks, left-out leaf hashes, witnesses.
struct Ledger {
    blocks: Vec<(String, LedgerBlockSpec)>,
    omitted: BTreeMap<u64, Hash>,
    witnesses: Vec<(String, LedgerCheckpointSpec)>,
}

impl Ledger {
    fn verify(&self, key: Option<&str>) -> Result<VerifiedLog, Finding> {
        let stored: Vec<StoredBlock> = self
            .blocks
            .iter()
            .map(|(name, spec)| StoredBlock {
                name,
                spec,
                omitted: Some(&self.omitted),
            })
            .collect();
        verify_log(&stored, key)
    }
}

async fn client(kubeconfig: Option<&Path>) -> anyhow::Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(file, &Default::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(Client::try_from(config)?)
}

async fn read(source: &Source) -> anyhow::Result<Ledger> {
    match source {
        Source::Export(path) => read_export(path),
        Source::Live {
            kubeconfig,
            namespace,
            members,
        } => {
            let hub = client(kubeconfig.as_deref()).await?;
            let blocks = Api::<LedgerBlock>::namespaced(hub.clone(), namespace)
                .list(&ListParams::default())
                .await
                .context("listing LedgerBlocks")?
                .items
                .into_iter()
                .map(|b| (b.name_any(), b.spec))
                .collect();
            let mut witnesses = witnesses_in(&hub, "hub").await?;
            for member in members {
                let member_client = client(Some(member)).await?;
                witnesses
                    .extend(witnesses_in(&member_client, &member.display().to_string()).await?);
            }
            Ok(Ledger {
                blocks,
                omitted: BTreeMap::new(),
                witnesses,
            })
        }
    }
}

async fn witnesses_in(
    client: &Client,
    cluster: &str,
) -> anyhow::Result<Vec<(String, LedgerCheckpointSpec)>> {
    let listed = Api::<LedgerCheckpoint>::all(client.clone())
        .list(&ListParams::default())
        .await
        .with_context(|| format!("listing LedgerCheckpoints in {cluster}"))?;
    Ok(listed
        .items
        .into_iter()
        .map(|c| {
            let name = format!(
                "{} ({cluster}, namespace {})",
                c.spec.node,
                c.namespace().unwrap_or_default()
            );
            (name, c.spec)
        })
        .collect())
}

fn read_export(path: &Path) -> anyhow::Result<Ledger> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut ledger = Ledger {
        blocks: Vec::new(),
        omitted: BTreeMap::new(),
        witnesses: Vec::new(),
    };
    let mut leaves = Vec::new();
    for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        let parsed: Line = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not an export line", path.display(), number + 1))?;
        match parsed {
            Line::Record { leaf, .. } => leaves.push(leaf),
            Line::Omitted {
                index, leaf_hash, ..
            } => {
                let hash = tree::decode(&leaf_hash)
                    .with_context(|| format!("{}:{}: bad leaf hash", path.display(), number + 1))?;
                ledger.omitted.insert(index, hash);
                leaves.push(String::new());
            }
            Line::Block { name, mut spec } => {
                spec.records = std::mem::take(&mut leaves);
                ledger.blocks.push((name, spec));
            }
            Line::Witness { witness, spec } => ledger.witnesses.push((witness, spec)),
        }
    }
    Ok(ledger)
}

/// `flowfed ledger verify`: Ok with a summary, or the first thing wrong.
pub async fn verify(source: &Source, key: Option<&str>) -> anyhow::Result<()> {
    let ledger = read(source).await?;
    let log = ledger
        .verify(key)
        .map_err(|f| anyhow::anyhow!("ledger does not verify: {f}"))?;
    println!("log: {log}");
    let mut disagreeing = Vec::new();
    for (witness, spec) in &ledger.witnesses {
        match verify_witness(&log, witness, spec) {
            Ok(()) => println!(
                "witness {witness}: consistent at tree size {}",
                spec.tree_size
            ),
            Err(finding) => {
                println!("{finding}");
                disagreeing.push(witness.clone());
            }
        }
    }
    if !disagreeing.is_empty() {
        bail!(
            "{} witness(es) disagree with the log: {}",
            disagreeing.len(),
            disagreeing.join(", ")
        );
    }
    Ok(())
}

/// The records of `product` (`namespace/name` or a uid), by index.
fn records_of<'a>(log: &'a VerifiedLog, product: &str) -> Vec<(u64, &'a str, Record)> {
    (0u64..)
        .zip(&log.leaves)
        .filter_map(|(index, leaf)| {
            let record: Record = serde_json::from_str(leaf).ok()?;
            let id = &record.product;
            let named = format!("{}/{}", id.namespace, id.name);
            (named == product || id.uid == product).then_some((index, leaf.as_str(), record))
        })
        .collect()
}

/// `flowfed ledger prove`: an inclusion proof of each of the product's
/// records in the signed tree, each checked before it is printed.
pub async fn prove(source: &Source, key: Option<&str>, product: &str) -> anyhow::Result<()> {
    let log = read(source).await?.verify(key)?;
    let records = records_of(&log, product);
    if records.is_empty() {
        bail!("no record of {product} in the ledger");
    }
    let (size, root) = (log.head.size, log.head.root);
    println!(
        "tree size {size}, root {}, signed by {}",
        tree::encode(&root),
        log.verifier_key
    );
    for (index, leaf, record) in records {
        let proof = log
            .tree
            .prove_inclusion(index, size)
            .expect("the record is in the tree");
        assert!(
            includes(root, size, index, leaf.as_bytes(), &proof),
            "a fresh proof verifies"
        );
        let hashes: Vec<String> = proof.iter().map(tree::encode).collect();
        println!(
            "record {index} ({:?} at {}): leaf hash {}\n  proof: {}",
            record.change,
            record.time,
            tree::encode(&tree::leaf_hash(leaf.as_bytes())),
            hashes.join(" ")
        );
    }
    Ok(())
}

/// `flowfed ledger history`: where the product was visible over time, and why.
pub async fn history(source: &Source, key: Option<&str>, product: &str) -> anyhow::Result<()> {
    let log = read(source).await?.verify(key)?;
    let records = records_of(&log, product);
    if records.is_empty() {
        bail!("no record of {product} in the ledger");
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:<28} {:<8} {:<7} CHANGE", "TIME", "RECORD", "KIND")?;
    for (index, _, record) in records {
        let mut changes = Vec::new();
        for node in &record.became_visible {
            let why = record.listing.visible.iter().find(|v| &v.node == node);
            let because = why.map(|v| {
                let refs: Vec<String> = v
                    .mechanisms
                    .iter()
                    .map(|m| match &m.valid_until {
                        Some(until) => format!("{} {} until {until}", m.kind, m.reference),
                        None => format!("{} {}", m.kind, m.reference),
                    })
                    .collect();
                match refs.is_empty() {
                    true => v.reason.clone(),
                    false => format!("{}: {}", v.reason, refs.join(", ")),
                }
            });
            changes.push(format!("+{node} ({})", because.unwrap_or_default()));
        }
        for node in &record.withdrawn {
            let blocked = record.listing.blocked.iter().find(|b| &b.node == node);
            let why = blocked.map_or("withdrawn".to_owned(), |b| {
                format!("{}, rule {}", b.reason, b.rule)
            });
            changes.push(format!("-{node} ({why})"));
        }
        if changes.is_empty() {
            changes.push(format!(
                "visible at {} nodes, blocked at {}",
                record.listing.visible.len(),
                record.listing.blocked.len()
            ));
        }
        let kind = format!("{:?}", record.change);
        writeln!(
            out,
            "{:<28} {index:<8} {kind:<7} {}",
            record.time,
            changes.join("; ")
        )?;
    }
    Ok(())
}

/// `flowfed ledger export`: every block as JSON Lines; records before
/// `since` (RFC 3339) only as leaf hashes, so the export still verifies.
pub async fn export(source: &Source, key: Option<&str>, since: Option<&str>) -> anyhow::Result<()> {
    let since = since
        .map(|s| s.parse::<k8s_openapi::jiff::Timestamp>())
        .transpose()
        .context("--since is not an RFC 3339 time")?;
    let ledger = read(source).await?;
    ledger.verify(key)?;
    let mut blocks = ledger.blocks.clone();
    blocks.sort_by_key(|(_, spec)| spec.index);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (name, mut spec) in blocks {
        for (index, leaf) in (spec.first_record..).zip(std::mem::take(&mut spec.records)) {
            if let Some(hash) = ledger.omitted.get(&index) {
                let line = Line::Omitted {
                    index,
                    block: spec.index,
                    leaf_hash: tree::encode(hash),
                };
                serde_json::to_writer(&mut out, &line)?;
                writeln!(out)?;
                continue;
            }
            let record: Record = serde_json::from_str(&leaf)?;
            let before = since.is_some_and(|since| {
                record
                    .time
                    .parse::<k8s_openapi::jiff::Timestamp>()
                    .is_ok_and(|t| t < since)
            });
            let line = match before {
                true => Line::Omitted {
                    index,
                    block: spec.index,
                    leaf_hash: tree::encode(&tree::leaf_hash(leaf.as_bytes())),
                },
                false => Line::Record {
                    index,
                    block: spec.index,
                    leaf,
                    record,
                },
            };
            serde_json::to_writer(&mut out, &line)?;
            writeln!(out)?;
        }
        serde_json::to_writer(&mut out, &Line::Block { name, spec })?;
        writeln!(out)?;
    }
    for (witness, spec) in ledger.witnesses {
        serde_json::to_writer(&mut out, &Line::Witness { witness, spec })?;
        writeln!(out)?;
    }
    out.flush()?;
    Ok(())
}
