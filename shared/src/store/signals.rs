//! Per-region commit signals. After a commit the writer wakes only the
//! watchers of the regions the commit touched: each district it wrote
//! events of, that district's province, and national. A hub with hundreds
//! of open Pull streams then wakes the few whose child has news, not all of
//! them (`Store::watch_head` still fires for every commit, for the one
//! push loop that forwards everything upward).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::watch;

use crate::domain::{Seq, SiteCode};

/// One watch channel per region somebody watches; the value is the head
/// seq of the last commit that touched the region.
#[derive(Default)]
pub(super) struct RegionSignals {
    // std Mutex: held for map look-ups only, never across an await. The
    // map holds at most one entry per region code ever watched (a few
    // hundred), so it is never pruned.
    by_region: Mutex<HashMap<SiteCode, watch::Sender<Seq>>>,
}

impl RegionSignals {
    /// A receiver that changes after every commit touching `region` (a
    /// district, a province, or national for everything). Commits before
    /// this call are not signalled: read from your cursor first.
    pub(super) fn subscribe(&self, region: &SiteCode) -> watch::Receiver<Seq> {
        self.map()
            .entry(region.clone())
            .or_insert_with(|| watch::channel(Seq(0)).0)
            .subscribe()
    }

    /// The map stays consistent even if a holder panicked (every critical
    /// section is a single insert or `send_replace`), so poisoning is
    /// ignored rather than turned into a feed that never wakes.
    fn map(&self) -> MutexGuard<'_, HashMap<SiteCode, watch::Sender<Seq>>> {
        self.by_region
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Called by the writer after a commit that stored events of
    /// `districts`, with the new head.
    pub(super) fn publish(&self, districts: &BTreeSet<SiteCode>, head: Seq) {
        if districts.is_empty() {
            return;
        }
        let map = self.map();
        let mut provinces = BTreeSet::new();
        for district in districts {
            signal(&map, district, head);
            if let Some(province) = district.province()
                && provinces.insert(province)
            {
                // District codes are NN.NN, so the prefix parses.
                if let Ok(province) = SiteCode::parse(province) {
                    signal(&map, &province, head);
                }
            }
        }
        signal(&map, &SiteCode::national(), head);
    }
}

fn signal(map: &HashMap<SiteCode, watch::Sender<Seq>>, region: &SiteCode, head: Seq) {
    if let Some(tx) = map.get(region) {
        tx.send_replace(head);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> SiteCode {
        SiteCode::parse(s).unwrap()
    }

    #[test]
    fn a_commit_wakes_its_district_province_and_national_only() {
        let signals = RegionSignals::default();
        let mut gayo_lues = signals.subscribe(&code("11.13"));
        let aceh_tengah = signals.subscribe(&code("11.04"));
        let aceh = signals.subscribe(&code("11"));
        let sumut = signals.subscribe(&code("12"));
        let mut national = signals.subscribe(&SiteCode::national());

        signals.publish(&BTreeSet::from([code("11.13")]), Seq(7));

        assert!(gayo_lues.has_changed().unwrap());
        assert_eq!(*gayo_lues.borrow_and_update(), Seq(7));
        assert!(aceh.has_changed().unwrap());
        assert!(national.has_changed().unwrap());
        assert!(!aceh_tengah.has_changed().unwrap());
        assert!(!sumut.has_changed().unwrap());

        // A commit without events signals nobody.
        national.borrow_and_update();
        signals.publish(&BTreeSet::new(), Seq(8));
        assert!(!national.has_changed().unwrap());
        assert!(!gayo_lues.has_changed().unwrap());
    }
}
