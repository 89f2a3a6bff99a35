//! The SDK's C interface for real: the C example (examples/c/device.c), built
//! here with the system C compiler against the static library, enrolls with
//! the TTP, authenticates to the HSP and streams samples, through a relay that
//! carries its frames to the services over gRPC (as a hub or a phone would).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use vitalgate_core::credential::Credential;
use vitalgate_core::resumption::is_resumption;
use vitalgate_device::{send_m1, HandshakeCall};
use vitalgate_proto::v1::{self, device_frame, hsp_frame};

use crate::harness::*;

/// The largest frame the relay carries (the C example's limit too).
const MAX_FRAME: usize = 65_536;

/// What the relay saw, for the test to check.
#[derive(Debug, Default)]
struct Seen {
    /// The serial of the credential the TTP issued to the device.
    device_serial: Option<u64>,
    /// Per session, the bytes of the four handshake messages.
    handshake_bytes: Vec<usize>,
}

/// The relay's link to the device: frames of a 4-byte big-endian length and
/// the bytes (examples/c/device.c describes the purposes).
async fn read_frame(link: &mut (impl AsyncReadExt + Unpin)) -> std::io::Result<Vec<u8>> {
    let len = link.read_u32().await? as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!("a frame of {len} bytes")));
    }
    let mut frame = vec![0; len];
    link.read_exact(&mut frame).await?;
    Ok(frame)
}

async fn write_frame(link: &mut OwnedWriteHalf, frame: &[u8]) -> std::io::Result<()> {
    link.write_u32(frame.len() as u32).await?;
    link.write_all(frame).await
}

/// Carries one connection of the device to the TTP or the HSP.
async fn relay(link: TcpStream, ttp: TtpClient, hsp: Endpoint, seen: Arc<Mutex<Seen>>) {
    let (mut from_device, mut to_device) = link.into_split();
    let result = match read_frame(&mut from_device).await.as_deref() {
        Ok(b"enroll") => enroll(&mut from_device, &mut to_device, ttp, &seen).await,
        Ok(b"session") => session(from_device, to_device, hsp, &seen).await,
        other => Err(format!("the device's first frame was {other:?}")),
    };
    if let Err(e) = result {
        eprintln!("relay: {e}");
    }
}

async fn enroll(
    from_device: &mut (impl AsyncReadExt + Unpin),
    to_device: &mut OwnedWriteHalf,
    mut ttp: TtpClient,
    seen: &Mutex<Seen>,
) -> Result<(), String> {
    let request = read_frame(from_device).await.map_err(|e| e.to_string())?;
    let token_len = usize::from(u16::from_be_bytes([request[0], request[1]]));
    let (token, rest) = request[2..].split_at(token_len);
    let (public_key, proof) = rest.split_at(32);
    let answer = ttp
        .enroll(v1::EnrollRequest {
            token: String::from_utf8(token.to_vec()).map_err(|e| e.to_string())?,
            public_key: public_key.to_vec(),
            proof_of_possession: proof.to_vec(),
        })
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    let serial = Credential::decode(&answer.credential)
        .map_err(|e| e.to_string())?
        .serial();
    seen.lock().expect("seen").device_serial = Some(serial);
    let mut frame = (answer.credential.len() as u16).to_be_bytes().to_vec();
    frame.extend_from_slice(&answer.credential);
    for anchor in &answer.trust_anchors {
        frame.extend_from_slice(anchor);
    }
    write_frame(to_device, &frame)
        .await
        .map_err(|e| e.to_string())
}

/// A session: M1 and M3 go as handshake frames (a device proven by its key
/// alone sends no other), or RM1 alone when the device resumes, everything
/// after as records; whatever the HSP sends goes back as it is.
async fn session(
    mut from_device: tokio::net::tcp::OwnedReadHalf,
    mut to_device: OwnedWriteHalf,
    hsp: Endpoint,
    seen: &Mutex<Seen>,
) -> Result<(), String> {
    let mut client = v1::hsp_client::HspClient::new(connect(&hsp).await)
        .max_decoding_message_size(vitalgate_rpc::MAX_MESSAGE_BYTES);
    let m1 = read_frame(&mut from_device)
        .await
        .map_err(|e| e.to_string())?;
    let (tx, mut inbound, m2) = send_m1(&mut client, HandshakeCall::DeviceSession, m1.clone())
        .await
        .map_err(|e| e.to_string())?;
    write_frame(&mut to_device, &m2)
        .await
        .map_err(|e| e.to_string())?;
    if is_resumption(&m1) {
        seen.lock()
            .expect("seen")
            .handshake_bytes
            .push(m1.len() + m2.len());
        return carry_records(from_device, to_device, tx, inbound).await;
    }
    let m3 = read_frame(&mut from_device)
        .await
        .map_err(|e| e.to_string())?;
    let m3_len = m3.len();
    tx.send(v1::DeviceFrame {
        frame: Some(device_frame::Frame::Handshake(m3)),
    })
    .await
    .map_err(|e| e.to_string())?;
    let m4 = match inbound.message().await.map_err(|e| e.to_string())? {
        Some(v1::HspFrame {
            frame: Some(hsp_frame::Frame::Handshake(m4)),
        }) => m4,
        other => return Err(format!("expected M4, got {other:?}")),
    };
    write_frame(&mut to_device, &m4)
        .await
        .map_err(|e| e.to_string())?;
    seen.lock()
        .expect("seen")
        .handshake_bytes
        .push(m1.len() + m2.len() + m3_len + m4.len());
    carry_records(from_device, to_device, tx, inbound).await
}

/// Records from the device, until it closes the link (which ends the
/// stream), and whatever the HSP sends back.
async fn carry_records(
    mut from_device: tokio::net::tcp::OwnedReadHalf,
    mut to_device: OwnedWriteHalf,
    tx: tokio::sync::mpsc::Sender<v1::DeviceFrame>,
    mut inbound: vitalgate_device::HspFrames,
) -> Result<(), String> {
    let upstream = tokio::spawn(async move {
        while let Ok(record) = read_frame(&mut from_device).await {
            let frame = Some(device_frame::Frame::Record(record));
            if tx.send(v1::DeviceFrame { frame }).await.is_err() {
                break;
            }
        }
    });
    while let Some(frame) = inbound.message().await.map_err(|e| e.to_string())? {
        let bytes = match frame.frame {
            Some(hsp_frame::Frame::Record(bytes) | hsp_frame::Frame::Handshake(bytes)) => bytes,
            _ => continue,
        };
        if write_frame(&mut to_device, &bytes).await.is_err() {
            break;
        }
    }
    upstream.abort();
    Ok(())
}

/// The static library cargo built beside this test (a path crate with a
/// cdylib keeps its file names unhashed in `deps/`).
fn static_library() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let deps = exe.parent().expect("deps directory");
    let library = deps.join("libvitalgate_sdk_c.a");
    assert!(
        library.exists(),
        "{} is missing: the e2e tests depend on vitalgate-sdk-c, so cargo builds it first",
        library.display()
    );
    library
}

/// Builds the C example with the system C compiler (`$CC`, else `cc`).
fn build_example(out: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let exe = out.join("device");
    let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let output = std::process::Command::new(&compiler)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(root.join("crates/sdk-c/include"))
        .arg(root.join("examples/c/device.c"))
        .arg(static_library())
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("the C compiler `{compiler}` cannot run: {e}"));
    assert!(
        output.status.success(),
        "the C example does not build:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    exe
}

#[tokio::test]
async fn a_c_device_enrolls_authenticates_and_streams_through_a_relay() {
    let platform = Platform::start().await;
    let token = platform.token(v1::Role::Device, "pt-c-sdk", 60).await;
    let exe = tokio::task::spawn_blocking({
        let out = platform.dir.path().to_path_buf();
        move || build_example(&out)
    })
    .await
    .expect("build");

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let relay_task = tokio::spawn({
        let (ttp, hsp, seen) = (
            platform.ttp().await,
            platform.hsp().url.clone(),
            seen.clone(),
        );
        async move {
            while let Ok((link, _)) = listener.accept().await {
                tokio::spawn(relay(link, ttp.clone(), hsp.clone(), seen.clone()));
            }
        }
    });

    let state = platform.dir.path().join("c-device");
    std::fs::create_dir_all(&state).expect("state dir");
    let output = run_device(&exe, port, &token, &state, 5).await;
    assert_eq!(
        output.matches("session: 5 samples acknowledged").count(),
        2,
        "{output}"
    );

    // Every sample is in the HSP's store, once, as the C program measured it.
    let (serial, handshakes) = {
        let seen = seen.lock().expect("seen");
        let serial = seen.device_serial.expect("enrolled through the relay");
        (serial, seen.handshake_bytes.clone())
    };
    let stored = stored_samples(&platform, serial).await;
    let sequences: Vec<u64> = stored.iter().map(|s| s.sequence).collect();
    assert_eq!(sequences, (1..=10).collect::<Vec<_>>());
    for sample in &stored {
        assert_eq!(sample.heart_rate_bpm, 60.0 + sample.sequence as f32);
        assert_eq!(sample.spo2_percent, 97.0);
        assert!(sample.measured_at_ms > 0);
    }
    // The second session resumes with the ticket the first one's
    // acknowledgement carried: 100 bytes, no signature.
    assert_eq!(handshakes.len(), 2, "{handshakes:?}");
    assert!(handshakes[0] > 254, "{handshakes:?}");
    assert_eq!(handshakes[1], 100, "{handshakes:?}");

    // The same device again, from its stored state: no enrollment (the token
    // is spent), straight to the handshake, and its sample numbers go on
    // after the block the first run reserved.
    let output = run_device(&exe, port, &token, &state, 1).await;
    assert!(!output.contains("enrolled"), "{output}");
    // A new process holds no ticket (they live in memory only): its first
    // session refers to both credentials (the 254-byte handshake), its
    // second resumes.
    assert_eq!(seen.lock().expect("seen").handshake_bytes[2..], [254, 100]);
    relay_task.abort();
    let sequences: Vec<u64> = stored_samples(&platform, serial)
        .await
        .iter()
        .map(|s| s.sequence)
        .collect();
    assert_eq!(sequences.len(), 12, "{sequences:?}");
    assert_eq!(sequences[10..], [1001, 1002]);
    let kinds = platform.audit_kinds().await;
    assert_eq!(kinds.iter().filter(|k| *k == "handshake.ok").count(), 2);
    assert_eq!(
        kinds.iter().filter(|k| *k == "handshake.resumed").count(),
        2
    );
    platform.stop().await;
}

/// Runs the C device to its end; returns what it printed (it must succeed).
async fn run_device(exe: &Path, port: u16, token: &str, state: &Path, samples: u32) -> String {
    let run = tokio::process::Command::new(exe)
        .args([port.to_string().as_str(), token])
        .arg(state)
        .arg(samples.to_string())
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the C device finishes within a minute")
        .expect("run the C device");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the C device failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The device's samples in the HSP's store, by sequence.
async fn stored_samples(platform: &Platform, serial: u64) -> Vec<vitalgate_store::StoredSample> {
    let mut stored = platform
        .hsp()
        .store
        .latest_vitals(serial, 100)
        .await
        .expect("vitals");
    stored.sort_by_key(|s| s.sequence);
    stored
}
