//! Growing retry delays per object: a persistent problem must not cost the
//! API server a request every few seconds for ever, and a success starts over.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::jittered;

/// Consecutive reconcile failures by object (see [`error_policy`]).
#[derive(Default)]
pub struct Retries {
    failures: Mutex<HashMap<String, u32>>,
}

const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(300);

impl Retries {
    /// Records one more failure of `key` and returns how long to wait.
    pub fn after_failure(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().expect("retries lock");
        let count = failures.entry(key.to_owned()).or_insert(0);
        *count = count.saturating_add(1);
        jittered(retry_base(*count))
    }

    /// Forgets `key`'s failures: its next failure waits the first delay again.
    pub fn succeeded(&self, key: &str) {
        self.failures.lock().expect("retries lock").remove(key);
    }
}

/// The delay before jitter after `failures` consecutive failures.
fn retry_base(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(10);
    FIRST_RETRY.saturating_mul(1 << doublings).min(MAX_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_with_jitter_per_object_and_reset_on_success() {
        let retries = Retries::default();
        let mut previous = Duration::ZERO;
        for failure in 1..=10u32 {
            let delay = retries.after_failure("DataProduct/dfn-a/p");
            let base = retry_base(failure);
            assert!(
                delay >= base && delay <= base.mul_f64(1.5),
                "{failure}: {delay:?}"
            );
            assert!(base >= previous, "never shorter than the last");
            previous = base;
        }
        assert_eq!(retry_base(1), FIRST_RETRY);
        assert_eq!(retry_base(2), FIRST_RETRY * 2);
        assert_eq!(retry_base(10), MAX_RETRY, "capped");
        assert_eq!(retry_base(u32::MAX), MAX_RETRY, "no overflow");
        // Another object starts at the first delay; a success starts over.
        assert!(retries.after_failure("DataProduct/dfn-a/q") < FIRST_RETRY * 2);
        retries.succeeded("DataProduct/dfn-a/p");
        assert!(retries.after_failure("DataProduct/dfn-a/p") < FIRST_RETRY * 2);
    }
}
