//! Reading what each site holds, for the convergence wait and the checker:
//! the complaints it lists (Complaints.List and Count, over gRPC), the ids
//! in its event log, and its `status --json --integrity`.
//!
//! The event ids come from the site's SQLite file, opened read-only beside
//! the running process (WAL lets a reader work next to the writer): no RPC
//! lists event ids, and the checker must see the log itself — a duplicate
//! that the fold hides would still be a duplicate. This is the only place
//! the harness reads a site's database, and it never writes to one.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use lapor_shared::proto::v1::{self, complaints_client::ComplaintsClient};
use tonic::transport::{Channel, Endpoint};

use super::federation::{Federation, SiteInfo};

/// One complaint as a site lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub district: String,
    pub digest: String,
    pub event_count: u32,
}

/// The complaints a site lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holdings {
    /// Complaint ids in listing order, duplicates kept.
    pub listed: Vec<String>,
    /// By id (a duplicate keeps its last listing).
    pub complaints: BTreeMap<String, Listed>,
}

/// One row of a site's event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    pub event_id: String,
    pub complaint_id: String,
    /// The stable kind name (`created`, `verified`, ...).
    pub kind: String,
}

/// What `status --json --integrity` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// `PRAGMA integrity_check` lines; `["ok"]` when sound.
    pub integrity: Vec<String>,
    /// Event ids seen with two contents.
    pub conflicts: u64,
    /// Records refused by validation or scope.
    pub quarantined: u64,
    pub store_path: PathBuf,
}

/// Everything the checker reads of one site.
#[derive(Debug, Clone)]
pub struct TierView {
    pub site: SiteInfo,
    /// Complaints.Count with no filter.
    pub count: u64,
    pub holdings: Holdings,
    /// The event log; empty when it could not be read (see `health`).
    pub events: Vec<LoggedEvent>,
    /// The status, or why it could not be had (a failed integrity check
    /// makes the command fail).
    pub health: Result<Health, String>,
}

/// How long one read call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

fn complaints_client(addr: SocketAddr) -> anyhow::Result<ComplaintsClient<Channel>> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(1))
        .timeout(CALL_TIMEOUT)
        .connect_lazy();
    Ok(ComplaintsClient::new(channel))
}

/// Every complaint `addr` lists, page by page.
///
/// # Errors
/// A call failed.
pub async fn holdings(addr: SocketAddr) -> anyhow::Result<Holdings> {
    let mut client = complaints_client(addr)?;
    let mut out = Holdings::default();
    let mut page_token = String::new();
    // Bounded: a page holds up to 500, and no schedule writes 5 million.
    for _ in 0..10_000 {
        let page = client
            .list(v1::ListComplaintsRequest {
                filter: None,
                page_size: 500,
                page_token,
            })
            .await
            .with_context(|| format!("list complaints at {addr}"))?
            .into_inner();
        for c in page.complaints {
            out.listed.push(c.complaint_id.clone());
            out.complaints.insert(
                c.complaint_id,
                Listed {
                    district: c.district_code,
                    digest: c.digest,
                    event_count: c.event_count,
                },
            );
        }
        if page.next_page_token.is_empty() {
            return Ok(out);
        }
        page_token = page.next_page_token;
    }
    anyhow::bail!("listing at {addr} did not end after 10,000 pages")
}

/// Complaints.Count with no filter.
///
/// # Errors
/// The call failed.
pub async fn count(addr: SocketAddr) -> anyhow::Result<u64> {
    Ok(complaints_client(addr)?
        .count(v1::CountComplaintsRequest { filter: None })
        .await
        .with_context(|| format!("count complaints at {addr}"))?
        .into_inner()
        .count)
}

/// The rows of the event log in the SQLite file at `path`, read-only.
///
/// # Errors
/// The file could not be opened or read.
pub fn event_log(path: &Path) -> anyhow::Result<Vec<LoggedEvent>> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("open {} read-only", path.display()))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mut stmt = conn.prepare("SELECT event_id, complaint_id, kind FROM events")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, Vec<u8>>(0)?,
            r.get::<_, Vec<u8>>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (event_id, complaint_id, kind) = row?;
        out.push(LoggedEvent {
            event_id: uuid_text(&event_id)?,
            complaint_id: uuid_text(&complaint_id)?,
            kind,
        });
    }
    Ok(out)
}

fn uuid_text(bytes: &[u8]) -> anyhow::Result<String> {
    Ok(uuid::Uuid::from_slice(bytes)
        .context("an id in the event log is not 16 bytes")?
        .to_string())
}

fn health(status: &serde_json::Value) -> anyhow::Result<Health> {
    let integrity = status["integrity"]
        .as_array()
        .context("status has no integrity lines")?
        .iter()
        .map(|l| l.as_str().unwrap_or_default().to_owned())
        .collect();
    Ok(Health {
        integrity,
        conflicts: status["conflicts"].as_u64().context("status.conflicts")?,
        quarantined: status["quarantined"]
            .as_u64()
            .context("status.quarantined")?,
        store_path: PathBuf::from(status["store_path"].as_str().context("status.store_path")?),
    })
}

/// What every site of `fed` holds, for the checker.
///
/// # Errors
/// A site could not be listed or counted (its status failing is recorded
/// in the view instead: that is a finding, not a harness failure).
pub async fn views(fed: &Federation) -> anyhow::Result<Vec<TierView>> {
    let mut out = Vec::new();
    for site in 0..fed.len() {
        let info = fed.info(site);
        let holdings = holdings(info.addr).await?;
        let count = count(info.addr).await?;
        let health = match fed.status(site).await.and_then(|s| health(&s)) {
            Ok(h) => Ok(h),
            Err(e) => Err(format!("{e:#}")),
        };
        let events = match &health {
            Ok(h) => event_log(&h.store_path)?,
            Err(_) => Vec::new(),
        };
        out.push(TierView {
            site: info,
            count,
            holdings,
            events,
            health,
        });
    }
    Ok(out)
}
