//! `lapor-node list` and `show`: complaints as district staff read them, as
//! a table or text, or as JSON for scripts.
//!
//! Both open the store directly (read-only use; WAL lets them run beside the
//! node's writer), so they work whether or not the node is running. The
//! JSON shapes are [`ComplaintSummary`] and [`ComplaintDetail`].
//!
//! The reporter's NIK is masked in all output: staff who need the full
//! number have it on the intake form, and terminal scrollback and pasted
//! JSON are where personal data leaks (UU 27/2022).
//!
//! `show` runs on the node machine, by staff who hold its data directory,
//! so it reads reporter identity as an identity reader
//! (`Caller::local_cli`); every such read is appended to the audit log,
//! named by the local user (`$USER`). An anonymous complaint's identity,
//! if staff recorded it, is shown only with `--local-identity`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use lapor_shared::calendar::{IndonesianZone, zone_for_province};
use lapor_shared::domain::{
    Channel, Classification, ComplaintId, Event, EventBody, TrackingNumber,
};
use lapor_shared::hlc::Hlc;
use lapor_shared::lifecycle::ComplaintState;
use lapor_shared::rpc::caller::Caller;
use lapor_shared::store::{
    ComplaintFilter, ComplaintKey, ComplaintView, Custody, CustodyTier, HeldIdentity, IdentityKey,
    IdentityScope, MAX_PAGE_SIZE, PageRequest, Store,
};
use serde::Serialize;

use crate::cli::{ListArgs, ShowArgs};
use crate::init::load;

/// One row of `list --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComplaintSummary {
    pub complaint_id: String,
    pub tracking_number: String,
    pub status: &'static str,
    /// The district that received it.
    pub district: String,
    /// Where the incident happened (as deep as known).
    pub region: String,
    pub classification: &'static str,
    pub channel: &'static str,
    pub category: String,
    pub title: String,
    /// RFC 3339, UTC, from the HLC of the Created event.
    pub created_at: String,
    /// RFC 3339, UTC, from the HLC of the last event folded in.
    pub updated_at: String,
    pub event_count: u32,
}

/// What `show --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComplaintDetail {
    #[serde(flatten)]
    pub summary: ComplaintSummary,
    pub body: String,
    pub location: String,
    pub incident_date: Option<String>,
    pub anonymous: bool,
    pub secret: bool,
    /// Absent for anonymous complaints (unless `--local-identity`), and
    /// when no identity was recorded.
    pub reporter: Option<ReporterView>,
    pub dispositions: Vec<String>,
    /// When the complaint was first durable at each tier above this node
    /// (custody receipts); a tier is missing until its receipt arrives.
    pub custody: Vec<CustodyLine>,
    /// Every event, in fold order.
    pub history: Vec<HistoryLine>,
}

/// "At province since ..." — one tier of a complaint's custody.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustodyLine {
    pub tier: CustodyTier,
    /// RFC 3339, UTC.
    pub at: String,
    /// Local time in the district's zone, for the console ("10:02 WIB").
    pub at_local: String,
}

/// The reporter as shown to staff: NIK masked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReporterView {
    pub name: String,
    pub nik: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    /// Recorded for an anonymous complaint: held at this node only, never
    /// sent anywhere.
    pub local_only: bool,
}

/// One event of a complaint's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryLine {
    pub event_id: String,
    pub at: String,
    pub hlc: String,
    pub origin: String,
    pub actor: String,
    pub kind: &'static str,
    pub summary: String,
    /// Why the fold did not apply it, when it did not.
    pub skipped: Option<String>,
}

async fn open_store(config_path: &Path) -> anyhow::Result<Store> {
    let config = load(config_path)?;
    let path = &config.store.path;
    anyhow::ensure!(
        path.exists(),
        "find database {}: run `lapor-node init` first",
        path.display()
    );
    crate::open_store(&config).await
}

/// `lapor-node list`.
pub async fn list(config_path: &Path, args: ListArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(config_path).await?;
    let filter = ComplaintFilter {
        region: args.region,
        statuses: args.statuses.into_iter().map(Into::into).collect(),
        updated_since: None,
    };
    let items = collect(&store, filter, args.limit).await;
    store.close().await.context("close the store")?;
    let rows: Vec<ComplaintSummary> = items?.iter().map(summary).collect();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).context("serialise complaints")?
        );
    } else {
        print_table(&rows);
    }
    Ok(ExitCode::SUCCESS)
}

/// Pages through the store until `limit` complaints or the end.
async fn collect(
    store: &Store,
    filter: ComplaintFilter,
    limit: u32,
) -> anyhow::Result<Vec<ComplaintState>> {
    let mut items = Vec::new();
    let mut token = None;
    while items.len() < limit as usize {
        let want = (limit - items.len() as u32).min(MAX_PAGE_SIZE);
        let page = store
            .list(
                filter.clone(),
                PageRequest {
                    limit: want,
                    token: token.take(),
                },
            )
            .await
            .context("list complaints")?;
        items.extend(page.items);
        match page.next_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    items.truncate(limit as usize);
    Ok(items)
}

/// `lapor-node show`.
pub async fn show(config_path: &Path, args: ShowArgs) -> anyhow::Result<ExitCode> {
    let key = match ComplaintId::parse(&args.key) {
        Ok(id) => ComplaintKey::Id(id),
        Err(_) => ComplaintKey::Tracking(TrackingNumber(args.key.clone())),
    };
    let store = open_store(config_path).await?;
    let found = read_with_identity(&store, key, args.local_identity).await;
    store.close().await.context("close the store")?;
    let Some((view, identity)) = found? else {
        eprintln!("no complaint {} at this site", args.key);
        return Ok(ExitCode::FAILURE);
    };
    let detail = detail(&view.state, identity.as_ref(), &view.history, &view.custody);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&detail).context("serialise the complaint")?
        );
    } else {
        print_detail(&detail);
    }
    Ok(ExitCode::SUCCESS)
}

/// A complaint and, for staff, its reporter identity: always for a named
/// complaint, for an anonymous one only when asked. Each read is audited.
async fn read_with_identity(
    store: &Store,
    key: ComplaintKey,
    local_identity: bool,
) -> anyhow::Result<Option<(ComplaintView, Option<HeldIdentity>)>> {
    let Some(view) = store.get(key).await.context("read the complaint")? else {
        return Ok(None);
    };
    if view.state.privacy.anonymous && !local_identity {
        return Ok(Some((view, None)));
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned());
    let identity = store
        .read_identities(
            vec![IdentityKey::from(&view.state)],
            &Caller::local_cli(&user).audit_actor(),
        )
        .await
        .context("read the reporter identity")?
        .pop();
    Ok(Some((view, identity)))
}

pub fn summary(s: &ComplaintState) -> ComplaintSummary {
    ComplaintSummary {
        complaint_id: s.id.to_string(),
        tracking_number: s.tracking_number.to_string(),
        status: s.status.label(),
        district: s.district.to_string(),
        region: s.intake.location.region.to_string(),
        classification: classification_label(s.intake.classification),
        channel: channel_label(s.intake.channel),
        category: s.intake.category.clone(),
        title: s.intake.title.clone(),
        created_at: rfc3339(s.created_hlc),
        updated_at: rfc3339(s.updated_hlc),
        event_count: s.event_count,
    }
}

pub fn detail(
    s: &ComplaintState,
    identity: Option<&HeldIdentity>,
    history: &[Event],
    custody: &[Custody],
) -> ComplaintDetail {
    let intake = &s.intake;
    let location = match intake.location.coordinates {
        Some((lat, lon)) => format!("{} ({lat:.5}, {lon:.5})", intake.location.description),
        None => intake.location.description.clone(),
    };
    ComplaintDetail {
        summary: summary(s),
        body: intake.body.clone(),
        location,
        incident_date: intake.incident_date.map(|d| d.to_string()),
        anonymous: s.privacy.anonymous,
        secret: s.privacy.secret,
        reporter: identity.map(|h| ReporterView {
            name: h.reporter.name.clone(),
            nik: h.reporter.nik.as_ref().map(|n| mask_nik(&n.0)),
            phone: h.reporter.phone.clone(),
            email: h.reporter.email.clone(),
            local_only: h.scope == IdentityScope::Local,
        }),
        dispositions: s
            .dispositions
            .iter()
            .map(|h| {
                format!(
                    "{} -> {} ({})",
                    h.from_institution, h.to_institution, h.note
                )
            })
            .collect(),
        custody: custody
            .iter()
            .map(|c| {
                let at = chrono::DateTime::from_timestamp_millis(c.at_ms).unwrap_or_default();
                let zone = s
                    .district
                    .province()
                    .and_then(zone_for_province)
                    .unwrap_or(IndonesianZone::Wib);
                CustodyLine {
                    tier: c.tier,
                    at: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    at_local: format!(
                        "{} {}",
                        at.with_timezone(&zone.offset()).format("%Y-%m-%d %H:%M"),
                        zone.abbreviation()
                    ),
                }
            })
            .collect(),
        history: history
            .iter()
            .map(|e| HistoryLine {
                event_id: e.id.to_string(),
                at: rfc3339(e.hlc),
                hlc: e.hlc.to_string(),
                origin: e.origin.to_string(),
                actor: e.actor.clone(),
                kind: e.body.kind(),
                summary: event_summary(&e.body),
                skipped: s
                    .skipped
                    .iter()
                    .find(|k| k.event_id == e.id)
                    .map(|k| k.reason.clone()),
            })
            .collect(),
    }
}

fn event_summary(body: &EventBody) -> String {
    match body {
        EventBody::Created {
            tracking_number, ..
        } => format!("received as {tracking_number}"),
        EventBody::Verified { note, .. } => note.clone(),
        EventBody::Rejected { reason }
        | EventBody::Closed { reason }
        | EventBody::Archived { reason }
        | EventBody::Reopened { reason } => reason.clone(),
        EventBody::Dispositioned {
            from_institution,
            to_institution,
            note,
        } => {
            format!("{from_institution} -> {to_institution}: {note}")
        }
        EventBody::Responded { institution, body } => format!("{institution}: {body}"),
        EventBody::ReporterReplied { body } | EventBody::Commented { body } => body.clone(),
        EventBody::PrivacyTightened { privacy } => {
            format!("anonymous={} secret={}", privacy.anonymous, privacy.secret)
        }
    }
}

/// Keeps the first six digits (province, kabupaten, kecamatan: not
/// identifying on their own) and the last two.
pub fn mask_nik(nik: &str) -> String {
    nik.char_indices()
        .map(|(i, c)| if i < 6 || i + 2 >= nik.len() { c } else { '*' })
        .collect()
}

fn rfc3339(hlc: Hlc) -> String {
    hlc.to_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn classification_label(c: Classification) -> &'static str {
    match c {
        Classification::Pengaduan => "pengaduan",
        Classification::Aspirasi => "aspirasi",
        Classification::PermintaanInformasi => "permintaan informasi",
    }
}

pub fn channel_label(c: Channel) -> &'static str {
    match c {
        Channel::WalkIn => "walk-in",
        Channel::Letter => "letter",
        Channel::Sms1708 => "sms 1708",
        Channel::Phone => "phone",
        Channel::Web => "web",
        Channel::LocalApp => "local app",
    }
}

/// Cuts `s` to at most `max` characters (on a char boundary), marking the
/// cut with an ellipsis.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn print_table(rows: &[ComplaintSummary]) {
    if rows.is_empty() {
        println!("no complaints");
        return;
    }
    println!(
        "{:<18} {:<20} {:<13} {:<20} TITLE",
        "TRACKING", "STATUS", "REGION", "UPDATED (UTC)"
    );
    for r in rows {
        println!(
            "{:<18} {:<20} {:<13} {:<20} {}",
            r.tracking_number,
            r.status,
            r.region,
            r.updated_at.replace('T', " ").trim_end_matches('Z'),
            clip(&r.title, 48)
        );
    }
    println!("{} complaint(s)", rows.len());
}

fn print_detail(d: &ComplaintDetail) {
    let s = &d.summary;
    println!("{} — {}", s.tracking_number, s.title);
    println!("  id              {}", s.complaint_id);
    println!("  status          {}", s.status);
    println!(
        "  classification  {} via {}, category {:?}",
        s.classification, s.channel, s.category
    );
    println!("  district        {}   region {}", s.district, s.region);
    println!("  location        {}", d.location);
    if let Some(date) = &d.incident_date {
        println!("  incident date   {date}");
    }
    println!(
        "  privacy         anonymous={} secret={}",
        d.anonymous, d.secret
    );
    match &d.reporter {
        Some(r) => println!(
            "  reporter        {}{} nik={} phone={} email={}",
            if r.local_only {
                "(anonymous; held at this node only) "
            } else {
                ""
            },
            r.name,
            r.nik.as_deref().unwrap_or("-"),
            r.phone.as_deref().unwrap_or("-"),
            r.email.as_deref().unwrap_or("-")
        ),
        None if d.anonymous => println!("  reporter        (anonymous)"),
        None => println!("  reporter        (not recorded)"),
    }
    for hop in &d.dispositions {
        println!("  disposition     {hop}");
    }
    if d.custody.is_empty() {
        println!("  custody         not yet confirmed above this node");
    } else {
        let tiers: Vec<String> = d
            .custody
            .iter()
            .map(|c| {
                let name = match c.tier {
                    CustodyTier::Province => "provinsi",
                    CustodyTier::National => "nasional",
                };
                format!("{name} {}", c.at_local)
            })
            .collect();
        println!("  custody         {}", tiers.join(", "));
    }
    println!(
        "  received        {}   updated {}",
        s.created_at, s.updated_at
    );
    println!();
    println!("{}", d.body);
    println!();
    println!("history ({} events):", d.history.len());
    for h in &d.history {
        let skipped = h
            .skipped
            .as_deref()
            .map(|r| format!("  [not applied: {r}]"))
            .unwrap_or_default();
        println!(
            "  {}  {:<16} at {:<6} by {}: {}{}",
            h.at,
            h.kind,
            h.origin,
            h.actor,
            clip(&h.summary, 80),
            skipped
        );
    }
}

/// `lapor-node overdue`: this district's complaints past their deadline,
/// judged on the hub's clock (ours corrected by the skew measured at the
/// last Hello). A node lists; it never closes.
pub async fn overdue(
    config_path: &Path,
    args: crate::cli::OverdueArgs,
) -> anyhow::Result<ExitCode> {
    let config = load(config_path)?;
    let store = open_store(config_path).await?;
    let rows = lapor_shared::overdue::overdue_rows(&store, &config.deadlines, args.limit).await;
    store.close().await.context("close the store")?;
    let (now, rows) = rows.context("list overdue complaints")?;
    lapor_shared::overdue::print_rows(now, &rows, args.json).context("print overdue complaints")?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    mod identity {
        use lapor_shared::domain::{
            Intake, Location, Nik, Privacy, RegionCode, Reporter, SiteCode,
        };
        use lapor_shared::hlc::SystemClock;
        use lapor_shared::store::{NewComplaint, StoreConfig};

        use super::super::*;

        async fn submit(store: &Store, anonymous: bool) -> ComplaintKey {
            let intake = Intake {
                classification: Classification::Pengaduan,
                channel: Channel::WalkIn,
                category: String::new(),
                title: "Jalan rusak".into(),
                body: "Jalan desa rusak.".into(),
                location: Location {
                    region: RegionCode::parse("11.13.01").unwrap(),
                    description: String::new(),
                    coordinates: None,
                },
                incident_date: None,
                privacy: Privacy {
                    anonymous,
                    secret: false,
                },
                reporter: Some(Reporter {
                    name: "Cut Aminah".into(),
                    nik: Some(Nik("1113015507900001".into())),
                    phone: None,
                    email: None,
                }),
            };
            let s = store
                .submit(NewComplaint {
                    complaint_id: None,
                    intake,
                    actor: "petugas".into(),
                })
                .await
                .unwrap();
            ComplaintKey::Id(s.complaint_id)
        }

        #[tokio::test]
        async fn show_reads_identity_masked_and_audited_and_anonymous_only_on_request() {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(StoreConfig {
                path: dir.path().join("node.db"),
                site: SiteCode::parse("11.13").unwrap(),
                clock: SystemClock::default(),
            })
            .unwrap();
            let named = submit(&store, false).await;
            let anonymous = submit(&store, true).await;

            let (view, identity) = read_with_identity(&store, named, false)
                .await
                .unwrap()
                .unwrap();
            let d = detail(&view.state, identity.as_ref(), &view.history, &view.custody);
            let r = d.reporter.unwrap();
            assert_eq!(r.name, "Cut Aminah");
            assert_eq!(r.nik.as_deref(), Some("111301********01"));
            assert!(!r.local_only);

            let (view, identity) = read_with_identity(&store, anonymous.clone(), false)
                .await
                .unwrap()
                .unwrap();
            assert!(
                identity.is_none(),
                "anonymous: not without --local-identity"
            );
            let d = detail(&view.state, None, &view.history, &view.custody);
            assert!(d.anonymous && d.reporter.is_none());
            assert_eq!(store.verify_audit().await.unwrap().rows, 1);

            let (view, identity) = read_with_identity(&store, anonymous, true)
                .await
                .unwrap()
                .unwrap();
            let d = detail(&view.state, identity.as_ref(), &view.history, &view.custody);
            assert!(d.reporter.unwrap().local_only);
            let audit = store.verify_audit().await.unwrap();
            assert!(audit.is_intact());
            assert_eq!(audit.rows, 2, "each identity read is audited");
        }
    }

    #[test]
    fn nik_is_masked_except_region_prefix_and_last_two() {
        assert_eq!(mask_nik("1113014507900001"), "111301********01");
    }

    #[test]
    fn clip_cuts_on_character_boundaries() {
        assert_eq!(clip("jalan rusak", 20), "jalan rusak");
        assert_eq!(clip("Jalan desa rusak parah", 10), "Jalan des…");
        assert_eq!(clip("ééééé", 3), "éé…");
    }
}
