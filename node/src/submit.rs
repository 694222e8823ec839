//! `lapor-node submit`: district staff enter a complaint from the command
//! line (a walk-in, a letter, an SMS) and get its tracking number.
//!
//! By default it calls the running node's `Intake.Submit` over gRPC, so the
//! node's writer stays the only writer. With `--offline` it runs the same
//! [`IntakeService`] in-process on the store, for when the node is stopped;
//! either way validation and error statuses are identical. `--offline` takes
//! the node's writer lock, so it refuses to run beside a running node and two
//! processes never write one database.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use lapor_shared::proto::v1;
use lapor_shared::proto::v1::intake_client::IntakeClient;
use lapor_shared::proto::v1::intake_server::Intake as _;
use serde::Serialize;
use tonic::transport::Endpoint;

use crate::Node;
use crate::config::NodeConfig;
use crate::init::load;
use lapor_shared::rpc::intake::IntakeService;

/// How long `submit` waits to reach the node before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Flags of `lapor-node submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// LAPOR classification.
    #[arg(long, value_enum, default_value_t = ClassificationArg::Pengaduan)]
    pub classification: ClassificationArg,
    /// How the complaint reached the office.
    #[arg(long, value_enum, default_value_t = ChannelArg::WalkIn)]
    pub channel: ChannelArg,
    /// Category label, e.g. "Infrastruktur".
    #[arg(long, default_value = "Topik Lainnya")]
    pub category: String,
    /// Short title of the complaint.
    #[arg(long)]
    pub title: String,
    /// The complaint itself, ideally a chronology.
    #[arg(long)]
    pub body: String,
    /// Kemendagri code of the incident location (NN.NN[.NN[.NNNN]]);
    /// default: this node's district.
    #[arg(long)]
    pub region: Option<String>,
    /// Free-text location: street, landmark, village as the reporter said.
    #[arg(long, default_value = "")]
    pub location: String,
    /// Latitude of the incident, degrees.
    #[arg(long, requires = "lon", allow_hyphen_values = true)]
    pub lat: Option<f64>,
    /// Longitude of the incident, degrees.
    #[arg(long, requires = "lat", allow_hyphen_values = true)]
    pub lon: Option<f64>,
    /// Date of the incident, YYYY-MM-DD.
    #[arg(long)]
    pub incident_date: Option<chrono::NaiveDate>,
    /// Reporter's name.
    #[arg(long, conflicts_with = "anonymous")]
    pub reporter_name: Option<String>,
    /// Reporter's NIK (16 digits).
    #[arg(long, conflicts_with = "anonymous")]
    pub reporter_nik: Option<String>,
    /// Reporter's phone number.
    #[arg(long, conflicts_with = "anonymous")]
    pub reporter_phone: Option<String>,
    /// Reporter's e-mail address.
    #[arg(long, conflicts_with = "anonymous")]
    pub reporter_email: Option<String>,
    /// Anonim: the reporter's name is never published (no reporter fields
    /// are recorded).
    #[arg(long)]
    pub anonymous: bool,
    /// Rahasia: the report is never shown to the public.
    #[arg(long)]
    pub secret: bool,
    /// Operator account recorded as the actor; default: $USER.
    #[arg(long)]
    pub actor: Option<String>,
    /// Client-minted complaint id (UUIDv7), to retry a submission safely.
    #[arg(long)]
    pub complaint_id: Option<uuid::Uuid>,
    /// gRPC endpoint of the running node; default: from `server.listen`.
    #[arg(long, conflicts_with = "offline")]
    pub endpoint: Option<String>,
    /// Write straight to the store instead of calling the node (only while
    /// the node is stopped).
    #[arg(long)]
    pub offline: bool,
    /// Print the full answer as JSON instead of the tracking number.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClassificationArg {
    Pengaduan,
    Aspirasi,
    PermintaanInformasi,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChannelArg {
    WalkIn,
    Letter,
    Sms1708,
    Phone,
    Web,
    LocalApp,
}

/// What `submit --json` prints.
#[derive(Debug, Serialize)]
struct SubmitOutput {
    complaint_id: String,
    tracking_number: String,
    event_id: String,
    duplicate: bool,
}

/// `lapor-node submit`.
pub async fn submit(config_path: &Path, args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let config = load(config_path)?;
    let json = args.json;
    let offline = args.offline;
    let endpoint = args
        .endpoint
        .clone()
        .unwrap_or_else(|| config.local_endpoint());
    let request = build_request(&config, args);

    let response = if offline {
        submit_offline(config, request).await?
    } else {
        let channel = Endpoint::from_shared(endpoint.clone())
            .with_context(|| format!("parse endpoint {endpoint:?}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .connect()
            .await
            .with_context(|| {
                format!("reach the node at {endpoint} (is it running? use --offline if not)")
            })?;
        IntakeClient::new(channel)
            .submit(request)
            .await
            .map_err(status_error)?
            .into_inner()
    };

    if json {
        let out = SubmitOutput {
            complaint_id: response.complaint_id,
            tracking_number: response.tracking_number,
            event_id: response.event_id,
            duplicate: response.duplicate,
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&out).context("serialise the answer")?
        );
    } else {
        if response.duplicate {
            eprintln!("already recorded earlier; nothing new was written");
        }
        println!("{}", response.tracking_number);
    }
    Ok(ExitCode::SUCCESS)
}

async fn submit_offline(
    config: NodeConfig,
    request: v1::SubmitRequest,
) -> anyhow::Result<v1::SubmitResponse> {
    let path = config.store.path.clone();
    anyhow::ensure!(
        path.exists(),
        "find database {}: run `lapor-node init` first",
        path.display()
    );
    // `Node::open` takes the store's writer lock, so this fails while the
    // node runs instead of becoming a second writer.
    let node = Node::open(config)
        .await
        .context("write offline (stop the node first, or submit without --offline)")?;
    let store = node.store().clone();
    let answer = IntakeService::new(store.clone())
        .submit(tonic::Request::new(request))
        .await;
    store.close().await.context("close the store")?;
    drop(node);
    Ok(answer.map_err(status_error)?.into_inner())
}

/// A refusal from the node, with its field-level details, as the error
/// the operator reads.
fn status_error(status: tonic::Status) -> anyhow::Error {
    use std::fmt::Write as _;
    use tonic_types::StatusExt as _;
    let mut msg = format!(
        "submit the complaint: {:?}: {}",
        status.code(),
        status.message()
    );
    if let Some(bad) = status.get_error_details().bad_request() {
        for v in &bad.field_violations {
            let _ = write!(msg, "\n  {}: {}", v.field, v.description);
        }
    }
    anyhow::anyhow!(msg)
}

fn build_request(config: &NodeConfig, args: SubmitArgs) -> v1::SubmitRequest {
    let reporter = (!args.anonymous).then(|| v1::ReporterIdentity {
        name: args.reporter_name.unwrap_or_default(),
        nik: args.reporter_nik.unwrap_or_default(),
        phone: args.reporter_phone.unwrap_or_default(),
        email: args.reporter_email.unwrap_or_default(),
    });
    let reporter = reporter.filter(|r| *r != v1::ReporterIdentity::default());
    let intake = v1::ComplaintIntake {
        classification: match args.classification {
            ClassificationArg::Pengaduan => v1::Classification::Pengaduan,
            ClassificationArg::Aspirasi => v1::Classification::Aspirasi,
            ClassificationArg::PermintaanInformasi => v1::Classification::PermintaanInformasi,
        } as i32,
        channel: match args.channel {
            ChannelArg::WalkIn => v1::Channel::WalkIn,
            ChannelArg::Letter => v1::Channel::Letter,
            ChannelArg::Sms1708 => v1::Channel::Sms1708,
            ChannelArg::Phone => v1::Channel::Phone,
            ChannelArg::Web => v1::Channel::Web,
            ChannelArg::LocalApp => v1::Channel::LocalApp,
        } as i32,
        category: args.category,
        title: args.title,
        body: args.body,
        location: Some(v1::Location {
            region_code: args.region.unwrap_or_else(|| config.site.code.clone()),
            description: args.location,
            latitude: args.lat,
            longitude: args.lon,
        }),
        incident_date: args.incident_date.map(|d| {
            use chrono::Datelike as _;
            v1::Date {
                year: d.year(),
                month: d.month() as i32,
                day: d.day() as i32,
            }
        }),
        privacy: Some(v1::Privacy {
            is_anonymous: args.anonymous,
            is_secret: args.secret,
        }),
        reporter,
    };
    v1::SubmitRequest {
        complaint_id: args
            .complaint_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        intake: Some(intake),
        actor: args
            .actor
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "operator".to_owned()),
    }
}
