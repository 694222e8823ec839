//! Two-way federation (issue 4): lifecycle events written at national reach
//! an offline district node once it reconnects, every tier folds the same
//! state and shows the same deadlines, and custody receipts reach the node
//! even when its province hub restarted between receiving and forwarding.

use std::time::Duration;

use lapor_shared::proto::v1::{self, event_body::Kind};
use lapor_tests::site::{
    SiteProcess, hub_child, init_hub, init_hub_with_upstream, init_node_with_upstream,
    reserve_port, run_command, status_json,
};
use lapor_tests::{Binary, submit_request, wait_until};

const DEADLINE: Duration = Duration::from_secs(60);

async fn get(site: &SiteProcess, id: &str) -> anyhow::Result<Option<v1::Complaint>> {
    let resp = site
        .complaints()
        .await?
        .get(v1::GetComplaintRequest {
            key: Some(v1::get_complaint_request::Key::ComplaintId(id.to_owned())),
        })
        .await;
    match resp {
        Ok(r) => Ok(r.into_inner().complaint),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
        Err(s) => Err(s.into()),
    }
}

async fn add(
    site: &SiteProcess,
    id: &str,
    actor: &str,
    kind: Kind,
) -> anyhow::Result<v1::AddEventResponse> {
    Ok(site
        .intake()
        .await?
        .add_event(v1::AddEventRequest {
            event_id: String::new(),
            complaint_id: id.to_owned(),
            actor: actor.to_owned(),
            body: Some(v1::EventBody { kind: Some(kind) }),
        })
        .await?
        .into_inner())
}

#[tokio::test]
async fn national_acts_on_a_gayo_lues_complaint_while_the_node_is_offline_and_the_node_sees_it_all()
{
    let dir = tempfile::tempdir().unwrap();
    let national = SiteProcess::start(
        Binary::Hub,
        &init_hub(dir.path(), "national", "00").await.unwrap(),
    )
    .await
    .unwrap();
    let province_config =
        init_hub_with_upstream(dir.path(), "province", "11", Some(&national.endpoint()))
            .await
            .unwrap();
    let province = SiteProcess::start(Binary::Hub, &province_config)
        .await
        .unwrap();
    let node_config = init_node_with_upstream(dir.path(), "11.13", Some(&province.endpoint()))
        .await
        .unwrap();
    let mut node = SiteProcess::start(Binary::Node, &node_config)
        .await
        .unwrap();

    let id = uuid::Uuid::now_v7().to_string();
    node.intake()
        .await
        .unwrap()
        .submit(submit_request("11.13", 1, &id))
        .await
        .unwrap();
    wait_until(DEADLINE, "the complaint at national", || async {
        get(&national, &id).await
    })
    .await
    .unwrap();

    // The district goes dark (power cut, link down) ...
    node.sigterm().await.unwrap();
    assert!(node.wait_exit(DEADLINE).await.unwrap().success());

    // ... while national verifies, dispositions and responds.
    add(
        &national,
        &id,
        "admin.nasional",
        Kind::Verified(v1::Verified {
            note: "lengkap".into(),
            privacy: None,
        }),
    )
    .await
    .unwrap();
    add(
        &national,
        &id,
        "admin.nasional",
        Kind::Dispositioned(v1::Dispositioned {
            from_institution: "KemenPAN-RB".into(),
            to_institution: "Pemerintah Kabupaten Gayo Lues".into(),
            note: "kewenangan daerah".into(),
        }),
    )
    .await
    .unwrap();
    let responded = add(
        &national,
        &id,
        "penghubung.gayolues",
        Kind::Responded(v1::Responded {
            institution: "Dinas PUPR Gayo Lues".into(),
            body: "Perbaikan dijadwalkan minggu depan.".into(),
        }),
    )
    .await
    .unwrap();
    let at_national = responded.complaint.unwrap();
    assert_eq!(at_national.status, v1::Status::DalamProses as i32);

    // The district comes back and catches up through Pull.
    let node = SiteProcess::start(Binary::Node, &node_config)
        .await
        .unwrap();
    let at_node = wait_until(DEADLINE, "the node to hold national's events", || async {
        Ok(get(&node, &id).await?.filter(|c| c.event_count == 4))
    })
    .await
    .unwrap();
    let at_province = wait_until(
        DEADLINE,
        "the province to hold national's events",
        || async { Ok(get(&province, &id).await?.filter(|c| c.event_count == 4)) },
    )
    .await
    .unwrap();
    let at_national = get(&national, &id).await.unwrap().unwrap();

    assert_eq!(at_node.status, v1::Status::DalamProses as i32);
    assert_eq!(at_node.dispositions.len(), 1);
    assert_eq!(
        at_node.dispositions[0].to_institution,
        "Pemerintah Kabupaten Gayo Lues"
    );
    for (tier, c) in [("province", &at_province), ("national", &at_national)] {
        assert_eq!(
            c.digest, at_node.digest,
            "{tier} folds a different state than the node"
        );
        assert_eq!(
            c.deadlines, at_node.deadlines,
            "{tier} shows other deadlines than the node"
        );
    }
    assert_eq!(at_node.deadlines.len(), 1);
    assert_eq!(
        at_node.deadlines[0].kind,
        v1::DeadlineKind::AutoClose as i32,
        "a response starts the auto-close clock"
    );

    // Nothing the node sent came back to it (no echo), and it is in sync.
    let status = status_json(Binary::Node, &node_config).await.unwrap();
    assert_eq!(status["upstream"]["received_duplicates"], 0, "{status}");
    assert_eq!(status["upstream"]["received_events"], 3, "{status}");
    assert_eq!(status["upstream"]["queued_events"], 0, "{status}");

    // The node's console shows all of it, and how far up it is durable.
    let shown: serde_json::Value = serde_json::from_str(
        &run_command(Binary::Node, &node_config, &["show", &id, "--json"])
            .await
            .unwrap(),
    )
    .unwrap();
    let kinds: Vec<&str> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["created", "verified", "dispositioned", "responded"]);
    let tiers: Vec<&str> = shown["custody"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["tier"].as_str())
        .collect();
    assert_eq!(
        tiers,
        ["province", "national"],
        "custody: {}",
        shown["custody"]
    );
}

#[tokio::test]
async fn receipts_reach_the_node_when_the_province_restarted_between_receiving_and_forwarding() {
    let dir = tempfile::tempdir().unwrap();
    let national_addr = reserve_port().unwrap();
    let national_url = format!("http://{national_addr}");
    let province_config = init_hub_with_upstream(dir.path(), "province", "11", Some(&national_url))
        .await
        .unwrap();
    let mut province = SiteProcess::start(Binary::Hub, &province_config)
        .await
        .unwrap();
    let province_addr = province.addr();
    let node_config = init_node_with_upstream(dir.path(), "11.13", Some(&province.endpoint()))
        .await
        .unwrap();
    let node = SiteProcess::start(Binary::Node, &node_config)
        .await
        .unwrap();

    let mut ids = Vec::new();
    for n in 0..3 {
        let id = uuid::Uuid::now_v7().to_string();
        node.intake()
            .await
            .unwrap()
            .submit(submit_request("11.13", n, &id))
            .await
            .unwrap();
        ids.push(id);
    }
    // Durable at the province, national unreachable: nothing forwarded yet.
    wait_until(DEADLINE, "the province to hold the complaints", || async {
        Ok((province.count().await? == 3).then_some(()))
    })
    .await
    .unwrap();
    province.sigkill().await.unwrap();
    let province = SiteProcess::start_at(Binary::Hub, &province_config, province_addr)
        .await
        .unwrap();
    let national_config = init_hub(dir.path(), "national", "00").await.unwrap();
    let national = SiteProcess::start_at(Binary::Hub, &national_config, national_addr)
        .await
        .unwrap();

    for id in &ids {
        let custody = wait_until(DEADLINE, "the national receipt at the node", || async {
            let shown: serde_json::Value = serde_json::from_str(
                &run_command(Binary::Node, &node_config, &["show", id, "--json"]).await?,
            )?;
            let custody = shown["custody"].as_array().cloned().unwrap_or_default();
            Ok(custody
                .iter()
                .any(|c| c["tier"] == "national")
                .then_some(custody))
        })
        .await
        .unwrap();
        assert!(
            custody.iter().any(|c| c["tier"] == "province"),
            "{custody:?}"
        );
    }
    assert_eq!(national.count().await.unwrap(), 3);
    drop(province);
}

#[tokio::test]
async fn a_node_whose_clock_runs_days_ahead_still_syncs_orders_causally_and_is_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let province_config = init_hub(dir.path(), "province", "11").await.unwrap();
    let province = SiteProcess::start(Binary::Hub, &province_config)
        .await
        .unwrap();
    let node_config = init_node_with_upstream(dir.path(), "11.13", Some(&province.endpoint()))
        .await
        .unwrap();
    let three_days_ms = 3 * 86_400_000i64;
    let text = std::fs::read_to_string(&node_config).unwrap();
    assert!(text.contains("clock_offset_ms = 0"));
    std::fs::write(
        &node_config,
        text.replace(
            "clock_offset_ms = 0",
            &format!("clock_offset_ms = {three_days_ms}"),
        ),
    )
    .unwrap();
    let node = SiteProcess::start(Binary::Node, &node_config)
        .await
        .unwrap();

    let id = uuid::Uuid::now_v7().to_string();
    node.intake()
        .await
        .unwrap()
        .submit(submit_request("11.13", 7, &id))
        .await
        .unwrap();
    let at_province = wait_until(
        DEADLINE,
        "the future-dated complaint at the province",
        || async { get(&province, &id).await },
    )
    .await
    .unwrap();
    // The province acts on it with its own (correct) clock: its event still
    // orders after the node's future-dated one.
    let verified = add(
        &province,
        &id,
        "admin.aceh",
        Kind::Verified(v1::Verified {
            note: String::new(),
            privacy: None,
        }),
    )
    .await
    .unwrap()
    .complaint
    .unwrap();
    assert_eq!(verified.status, v1::Status::Terverifikasi as i32);
    assert!(verified.updated_hlc > at_province.created_hlc);
    let child = hub_child(&province_config, "11.13").await.unwrap().unwrap();
    assert_eq!(child["clock_warning"], true, "{child}");
    let skew = child["clock_skew_ms"].as_i64().unwrap();
    assert!(
        (skew - three_days_ms).abs() < 60_000,
        "measured skew {skew}"
    );
    // And the update reaches the node.
    wait_until(DEADLINE, "the verification at the node", || async {
        Ok(get(&node, &id)
            .await?
            .filter(|c| c.status == v1::Status::Terverifikasi as i32))
    })
    .await
    .unwrap();
}
