//! A processor's yearly volumes and the tier of mechanism they require
//! (Provisions Art 5(4), 7, 8). Volumes are counted per processor per calendar
//! year in China Standard Time (UTC+8): its declared transfers outside flowfed
//! plus the subjects of each of its personal, non-anonymized products that its
//! scope would list in another jurisdiction. The rules forbid splitting
//! volumes, so one product can move all of its processor's products.

use k8s_openapi::jiff::civil::date;
use k8s_openapi::jiff::tz::{self, TimeZone};
use k8s_openapi::jiff::{Timestamp, ToSpan};

use super::{NodeFacts, ProcessorTier, ProductFacts};

/// 1,000,000 individuals (Art 7(2)): only a security assessment.
pub const ASSESSMENT_INDIVIDUALS: u64 = 1_000_000;
/// 10,000 sensitive individuals (Art 7(2)): only a security assessment.
pub const ASSESSMENT_SENSITIVE: u64 = 10_000;
/// 100,000 individuals (Art 8): a contract, certification or assessment.
pub const CONTRACT_INDIVIDUALS: u64 = 100_000;

fn china_standard_time() -> TimeZone {
    TimeZone::fixed(tz::offset(8))
}

/// The calendar year of `now` in China Standard Time.
pub fn year_of(now: Timestamp) -> i32 {
    i32::from(now.to_zoned(china_standard_time()).year())
}

/// 1 January 00:00 UTC+8 after `now`.
pub fn next_year_start(now: Timestamp) -> Timestamp {
    let next = year_of(now) + 1;
    let year = i16::try_from(next).unwrap_or(i16::MAX);
    date(year, 1, 1)
        .at(0, 0, 0, 0)
        .to_zoned(china_standard_time())
        .map(|z| z.timestamp())
        .unwrap_or(Timestamp::MAX)
}

/// Three calendar years after `issued` (the life of an assessment or a certificate).
pub fn three_years_after(issued: Timestamp) -> Timestamp {
    issued
        .to_zoned(TimeZone::UTC)
        .checked_add(3.years())
        .map(|z| z.timestamp())
        .unwrap_or(Timestamp::MAX)
}

/// A processor's totals for one calendar year.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub year: i32,
    pub individuals: u64,
    pub sensitive_individuals: u64,
}

/// Figures a processor declared for one year, outside flowfed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Declared {
    pub year: i32,
    pub individuals: u64,
    pub sensitive_individuals: u64,
}

/// This year's totals of processor `name`, from what it declared and its
/// `products`, each with its publisher, over `nodes`.
pub fn totals<'a>(
    name: &str,
    declared: Option<Declared>,
    products: impl IntoIterator<Item = (&'a ProductFacts, &'a NodeFacts)>,
    nodes: &[NodeFacts],
    now: Timestamp,
) -> Totals {
    let year = year_of(now);
    let mut totals = Totals {
        year,
        ..Totals::default()
    };
    if let Some(declared) = declared.filter(|d| d.year == year) {
        totals.individuals += declared.individuals;
        totals.sensitive_individuals += declared.sensitive_individuals;
    }
    for (product, publisher) in products {
        if counts(name, product, publisher, nodes) {
            totals.individuals = totals.individuals.saturating_add(product.subjects.0);
            totals.sensitive_individuals = totals
                .sensitive_individuals
                .saturating_add(product.subjects.1);
        }
    }
    totals
}

/// Whether `product` counts towards processor `name`: its own, personal, not
/// anonymized, and its scope reaches a node in another jurisdiction.
fn counts(name: &str, product: &ProductFacts, publisher: &NodeFacts, nodes: &[NodeFacts]) -> bool {
    product.processor.as_deref() == Some(name)
        && product.is_personal()
        && !product.anonymized
        && nodes.iter().any(|t| {
            t.jurisdiction != publisher.jurisdiction
                && product
                    .selected
                    .as_ref()
                    .is_none_or(|q| q.matches(&t.labels))
        })
}

/// The tier `totals` put a processor in.
pub fn tier(totals: &Totals, critical_information_infrastructure: bool) -> ProcessorTier {
    if critical_information_infrastructure
        || totals.individuals >= ASSESSMENT_INDIVIDUALS
        || totals.sensitive_individuals >= ASSESSMENT_SENSITIVE
    {
        ProcessorTier::SecurityAssessment
    } else if totals.individuals >= CONTRACT_INDIVIDUALS || totals.sensitive_individuals >= 1 {
        ProcessorTier::ContractOrCertification
    } else {
        ProcessorTier::Exempt
    }
}
