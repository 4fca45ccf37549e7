//! The local API on a Unix socket (mode 0600, in a 0700 directory): length-prefixed
//! [`ApiRequest`] frames in, [`ApiFrame`] responses and, after `Subscribe`, events out.
//! Requests on one connection run concurrently; a malformed frame gets an error naming
//! the problem and the connection is closed.

use mes_protocol::wire::api::{ApiCall, ApiError, ApiErrorCode, ApiFrame, ApiReply, ApiRequest};
use mes_protocol::wire::codec::MAX_API_FRAME;
use mes_protocol::wire::framing::{read_frame, write_frame, FrameError};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};

use crate::daemon::Daemon;

/// Binds the socket with mode 0600.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// Serves clients until shutdown.
pub async fn serve(
    daemon: Arc<Daemon>,
    listener: UnixListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            a = listener.accept() => match a {
                Ok((stream, _)) => {
                    connections.spawn(connection(daemon.clone(), stream, shutdown.clone()));
                }
                Err(e) => tracing::warn!("local API accept failed: {e}"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    // Drain: each connection stops reading, finishes the calls it has in flight and
    // ends, so when this returns nothing here holds the daemon (or its store) any more.
    drop(daemon);
    while connections.join_next().await.is_some() {}
}

async fn connection(daemon: Arc<Daemon>, stream: UnixStream, mut shutdown: watch::Receiver<bool>) {
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<ApiFrame>(256);
    let writer = tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            if write_frame(&mut wr, &f).await.is_err() {
                break;
            }
        }
    });
    let mut calls = tokio::task::JoinSet::new();
    let mut subscriptions = Vec::new();
    loop {
        let read = tokio::select! {
            r = read_frame::<ApiRequest, _>(&mut rd, MAX_API_FRAME) => r,
            _ = shutdown.changed() => break,
        };
        let req = match read {
            Ok(Some(r)) => r,
            Ok(None) | Err(FrameError::Io(_)) => break,
            Err(e) => {
                let _ = tx
                    .send(ApiFrame::Response {
                        id: 0,
                        result: Err(ApiError::new(ApiErrorCode::BadRequest, e.to_string())),
                    })
                    .await;
                break;
            }
        };
        if matches!(req.call, ApiCall::Subscribe) {
            let mut events = daemon.events();
            let tx2 = tx.clone();
            subscriptions.push(tokio::spawn(async move {
                loop {
                    match events.recv().await {
                        Ok(e) => {
                            if tx2.send(ApiFrame::Event(e)).await.is_err() {
                                return;
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(_) => return,
                    }
                }
            }));
            let _ = tx
                .send(ApiFrame::Response {
                    id: req.id,
                    result: Ok(ApiReply::Done),
                })
                .await;
            continue;
        }
        let d = daemon.clone();
        let tx = tx.clone();
        calls.spawn(async move {
            let result = handle(&d, req.space, req.call).await;
            let _ = tx.send(ApiFrame::Response { id: req.id, result }).await;
        });
        while calls.try_join_next().is_some() {}
    }
    // Calls in flight are answered; event streams end with the connection.
    while calls.join_next().await.is_some() {}
    for s in subscriptions {
        s.abort();
    }
    drop(tx);
    let _ = writer.await;
}

/// Runs one call.
#[allow(
    clippy::too_many_lines,
    reason = "the local API's dispatcher, one arm per call"
)]
pub async fn handle(
    d: &Arc<Daemon>,
    space: Option<mes_protocol::ids::SpaceId>,
    call: ApiCall,
) -> Result<ApiReply, ApiError> {
    use ApiCall::*;
    Ok(match call {
        Status => ApiReply::Status(d.status()),
        Identity => {
            let me = d.identity();
            ApiReply::Identity {
                principal: me.principal.principal_id(),
                device: me.device.device_id(),
                name: me.name().to_string(),
                recipient: me.principal.age.recipient().0,
            }
        }
        CreateSpace { label } => ApiReply::SpaceCreated {
            space: d.create_space(&label).await?,
        },
        ListSpaces => ApiReply::Spaces(d.list_spaces()),
        NoteSet { key, value } => {
            let s = d.resolve_space(space).await?;
            d.note_set(s, &key, &value).await?;
            ApiReply::Done
        }
        NoteGet { key } => ApiReply::Values(d.note_get(d.resolve_space(space).await?, &key)?),
        NoteList => ApiReply::Notes(d.note_list(d.resolve_space(space).await?)?),
        RecordGet { kind } => {
            let (record, conflicts) = crate::record::get(d, d.resolve_space(space).await?, kind)?;
            ApiReply::Record { record, conflicts }
        }
        RecordEdit { kind, edit } => ApiReply::Touched(
            crate::record::edit(d, d.resolve_space(space).await?, kind, &edit).await?,
        ),
        DocAdd { doc } => ApiReply::Document(Box::new(
            d.doc_add(d.resolve_space(space).await?, &doc).await?,
        )),
        DocCheck { docs } => {
            ApiReply::DocChecked(d.doc_check(d.resolve_space(space).await?, &docs)?)
        }
        DocSearch { query } => {
            let (total, docs) = d.doc_search(d.resolve_space(space).await?, &query)?;
            ApiReply::Documents { total, docs }
        }
        DocGet { id, out } => {
            let size = d
                .doc_get(d.resolve_space(space).await?, &id, Path::new(&out))
                .await?;
            ApiReply::Written { path: out, size }
        }
        DocHide { id, hidden } => ApiReply::Document(Box::new(
            d.doc_hide(d.resolve_space(space).await?, &id, hidden)
                .await?,
        )),
        MeasureAdd { points } => ApiReply::Touched(
            d.measure_add(d.resolve_space(space).await?, points)
                .await?
                .to_string(),
        ),
        MeasureList { query } => {
            ApiReply::Measurements(d.measure_list(d.resolve_space(space).await?, &query)?)
        }
        AgendaList { from, months } => {
            let from = if from.is_empty() {
                jiff::Zoned::now().date()
            } else {
                from.parse().map_err(|_| {
                    ApiError::new(
                        ApiErrorCode::BadRequest,
                        format!("from {from:?} is not a date like 2026-11-24"),
                    )
                })?
            };
            ApiReply::Agenda(d.agenda_list(d.resolve_space(space).await?, from, months)?)
        }
        MessagePost { message, subject } => ApiReply::Touched(
            d.message_post(d.resolve_space(space).await?, message, &subject)
                .await?,
        ),
        MessageRead { id } => {
            d.message_read(d.resolve_space(space).await?, &id).await?;
            ApiReply::Done
        }
        Export { out } => {
            let (files, bytes) =
                crate::export::export(d, d.resolve_space(space).await?, Path::new(&out)).await?;
            ApiReply::Exported {
                path: out,
                files,
                bytes,
            }
        }
        ImportFhir { path } => ApiReply::Imported(
            crate::export::import(d, d.resolve_space(space).await?, Path::new(&path)).await?,
        ),
        EmergencyNumbers => {
            ApiReply::EmergencyNumbers(mes_protocol::record::emergency::builtin().to_vec())
        }
        Reminders { months } => {
            let today = jiff::Zoned::now().date();
            ApiReply::Reminders(d.reminders(d.resolve_space(space).await?, today, months)?)
        }
        NoteDelete { key } => {
            d.note_delete(d.resolve_space(space).await?, &key).await?;
            ApiReply::Done
        }
        LogAppend { text } => {
            d.log_append(d.resolve_space(space).await?, &text).await?;
            ApiReply::Done
        }
        LogRead => ApiReply::Log(d.log_read(d.resolve_space(space).await?)?),
        InboxDrop { text } => {
            d.inbox_drop(d.resolve_space(space).await?, &text).await?;
            ApiReply::Done
        }
        InboxRead => ApiReply::Inbox(d.inbox_read(d.resolve_space(space).await?)?),
        BlobPut { path } => {
            let (blob, size) =
                crate::replica::blobs::put(d, d.resolve_space(space).await?, Path::new(&path))
                    .await?;
            ApiReply::Blob { blob, size }
        }
        BlobGet { blob, out } => {
            let size =
                crate::replica::blobs::get(d, d.resolve_space(space).await?, blob, Path::new(&out))
                    .await?;
            ApiReply::Written { path: out, size }
        }
        Snapshot { volume } => {
            d.put_snapshot(d.resolve_space(space).await?, &volume)
                .await?;
            ApiReply::Done
        }
        Compact { volume } => {
            crate::replica::generation::compact(d, d.resolve_space(space).await?, &volume).await?;
            ApiReply::Done
        }
        PairStart => ApiReply::PairingCode(crate::devices::pairing::start(d.clone()).await?),
        PairJoin { code, device_name } => {
            crate::devices::pairing::join(d.clone(), &code, &device_name).await?;
            ApiReply::Done
        }
        ListDevices => ApiReply::Devices(d.list_devices().await?),
        RevokeDevice { device } => {
            d.revoke_device(device).await?;
            ApiReply::Done
        }
        Grant { principal, role } => {
            d.grant(d.resolve_space(space).await?, principal, role)
                .await?;
            ApiReply::Done
        }
        Consent { rpps, except } => {
            let space = d.resolve_space(space).await?;
            d.consent(space, &rpps, &except).await?;
            ApiReply::Consents(d.consents(space)?)
        }
        Withdraw { principal } => {
            d.withdraw(d.resolve_space(space).await?, principal).await?;
            ApiReply::Done
        }
        EmergencyPolicy {
            refuse_centre15,
            refuse_break_glass,
        } => {
            d.set_emergency_policy(
                d.resolve_space(space).await?,
                refuse_centre15,
                refuse_break_glass,
            )
            .await?;
            ApiReply::Done
        }
        EmergencyAccess { mode } => {
            let space = space.ok_or_else(|| ApiError {
                code: ApiErrorCode::BadRequest,
                message: "emergency access names the space (--space ID)".into(),
            })?;
            d.emergency_access(space, mode).await?;
            ApiReply::Done
        }
        Block { rpps, structure } => {
            d.block(
                d.resolve_space(space).await?,
                block_target(rpps, structure)?,
            )
            .await?;
            ApiReply::Done
        }
        Unblock { rpps, structure } => {
            d.unblock(
                d.resolve_space(space).await?,
                block_target(rpps, structure)?,
            )
            .await?;
            ApiReply::Done
        }
        Delegate {
            principal,
            role,
            volumes,
            until,
        } => {
            let until = until
                .map(|t| {
                    t.parse::<jiff::Timestamp>()
                        .map(|ts| mes_protocol::time::UnixMillis(ts.as_millisecond().max(0) as u64))
                        .map_err(|e| {
                            ApiError::new(
                                ApiErrorCode::BadRequest,
                                format!("until {t:?} is not an RFC 3339 time: {e}"),
                            )
                        })
                })
                .transpose()?;
            d.delegate(
                d.resolve_space(space).await?,
                principal,
                role,
                &volumes,
                until,
            )
            .await?;
            ApiReply::Done
        }
        ConsentTeam { structure, except } => ApiReply::Consents(
            d.consent_team(d.resolve_space(space).await?, &structure, &except)
                .await?,
        ),
        Blocks => ApiReply::Blocks(d.blocks(d.resolve_space(space).await?)?),
        Attending {
            rpps,
            policy,
            except,
        } => {
            let policy = policy
                .map(|p| mes_protocol::access::choices::AttendingPolicy::parse(&p))
                .transpose()?;
            let (consent, warning) = d
                .designate_attending(d.resolve_space(space).await?, &rpps, policy, &except)
                .await?;
            ApiReply::Attending { consent, warning }
        }
        RecoveryKit {
            out,
            passphrase,
            split,
        } => {
            let lock = match (passphrase, split) {
                (Some(p), None) => crate::devices::recovery::KitLock::Passphrase(p.into()),
                (None, Some((k, n))) => crate::devices::recovery::KitLock::Split { k, n },
                _ => {
                    return Err(ApiError::new(
                        ApiErrorCode::BadRequest,
                        "a kit is locked by a passphrase or split among shares, one of the two",
                    ))
                }
            };
            let files = d
                .make_recovery_kit(std::path::Path::new(&out), lock)
                .await?;
            ApiReply::Values(files)
        }
        Restore {
            kit,
            passphrase,
            shares,
        } => {
            let sealed = std::fs::read(&kit)
                .map_err(|e| ApiError::new(ApiErrorCode::BadRequest, format!("{kit}: {e}")))?;
            let key = match passphrase {
                Some(p) => crate::devices::recovery::KitKey::Passphrase(p.into()),
                None => crate::devices::recovery::KitKey::Shares(shares),
            };
            let (address, fingerprint) = d.restore_from_kit(&sealed, key).await?;
            ApiReply::Values(vec![address, fingerprint])
        }
        Enrol { request } => {
            let for_space = match &request {
                mes_protocol::enrolment::EnrolRequest::Activate { .. }
                | mes_protocol::enrolment::EnrolRequest::ResetPasswordAsOwner { .. } => {
                    Some(d.resolve_space(space).await?)
                }
                _ => None,
            };
            ApiReply::Enrolment(d.enrol(for_space, request).await?)
        }
        EnrolFor { profile, request } => ApiReply::Enrolment(d.enrol_for(&profile, request).await?),
        EnrolProfiles => ApiReply::EnrolProfiles(d.enrol_profiles()),
        Catalogue => ApiReply::Catalogue(d.catalogue(d.resolve_space(space).await?).await?),
        AllowService { service, data } => ApiReply::Service(Box::new(
            d.allow_service(d.resolve_space(space).await?, &service, &data)
                .await?,
        )),
        RevokeService { service } => {
            d.revoke_service(d.resolve_space(space).await?, &service)
                .await?;
            ApiReply::Done
        }
        HandOver { to, recipient } => {
            d.hand_over(
                d.resolve_space(space).await?,
                to,
                mes_protocol::crypto::keys::AgeRecipient(recipient),
            )
            .await?;
            ApiReply::Done
        }
        DocHideFromParents { id } => ApiReply::Document(Box::new(
            d.doc_hide_from_parents(d.resolve_space(space).await?, &id)
                .await?,
        )),
        DocShowToRepresentatives { id, confirmed } => ApiReply::Document(Box::new(
            d.doc_show_to_representatives(d.resolve_space(space).await?, &id, confirmed)
                .await?,
        )),
        SendDocument { doc } => {
            d.send_document(d.resolve_space(space).await?, &doc).await?;
            ApiReply::Done
        }
        SendMessage { subject, body } => {
            crate::record::inbox_items::check_message(&subject, &body)?;
            d.drop_item(
                d.resolve_space(space).await?,
                &mes_protocol::record::inbox::InboxItem::Message { subject, body },
            )
            .await?;
            ApiReply::Done
        }
        SendAppointment { appointment } => {
            if appointment.at.trim().is_empty() || appointment.title.trim().is_empty() {
                return Err(ApiError::new(
                    ApiErrorCode::BadRequest,
                    "an appointment needs a time (at) and a title",
                ));
            }
            d.drop_item(
                d.resolve_space(space).await?,
                &mes_protocol::record::inbox::InboxItem::Appointment(appointment),
            )
            .await?;
            ApiReply::Done
        }
        AskConsent { note } => {
            d.drop_item(
                d.resolve_space(space).await?,
                &mes_protocol::record::inbox::InboxItem::ConsentRequest { note },
            )
            .await?;
            ApiReply::Done
        }
        Patients => ApiReply::Values(d.patients()),
        HoldDocument { nir, doc } => {
            let hold = d.hold_document(&nir, &doc).await?;
            ApiReply::Values(d.after_hold(&hold))
        }
        HoldMessage { nir, subject, body } => {
            let hold = d.hold_message(&nir, &subject, &body).await?;
            ApiReply::Values(d.after_hold(&hold))
        }
        Held => ApiReply::Values(d.held()),
        DeliverHeld => ApiReply::Values(d.deliver_held().await?),
        ConsentRequests => ApiReply::Values(d.consent_requests(d.resolve_space(space).await?)?),
        Research { share } => {
            d.set_research(d.resolve_space(space).await?, share).await?;
            ApiReply::Done
        }
        ResearchExport { out } => {
            let path = d
                .research_export(d.resolve_space(space).await?, std::path::Path::new(&out))
                .await?;
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            ApiReply::Written { path, size }
        }
        Notifications => ApiReply::Notifications(d.notifications(d.resolve_space(space).await?)),
        NotifyPrefs { kinds } => {
            d.set_notify_prefs(d.resolve_space(space).await?, &kinds)
                .await?;
            ApiReply::Done
        }
        Consents => ApiReply::Consents(d.consents(d.resolve_space(space).await?)?),
        AccessHistory => ApiReply::AccessHistory(d.access_history(d.resolve_space(space).await?)),
        FlagAccess { seq } => {
            d.flag_access(d.resolve_space(space).await?, seq)
                .await
                .map_err(|e| ApiError {
                    code: ApiErrorCode::BadRequest,
                    message: e.to_string(),
                })?;
            ApiReply::Done
        }
        Subscribe => ApiReply::Done,
        SyncNow => {
            d.link.wake.notify_one();
            ApiReply::Done
        }
    })
}

/// Exactly one of an RPPS number and an establishment.
fn block_target(
    rpps: Option<String>,
    structure: Option<String>,
) -> Result<crate::access::choices::BlockTarget, ApiError> {
    match (rpps, structure) {
        (Some(r), None) => Ok(crate::access::choices::BlockTarget::Professional(r)),
        (None, Some(s)) => Ok(crate::access::choices::BlockTarget::Structure(s)),
        _ => Err(ApiError {
            code: ApiErrorCode::BadRequest,
            message: "name either a professional (--rpps) or an establishment (--structure)".into(),
        }),
    }
}
