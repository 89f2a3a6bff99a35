//! `vitalgate-bench device`: the wearable SDK on an emulated Cortex-M4F.
//!
//! Builds `firmware/` for thumbv7em-none-eabihf (opt-level "s" and "z"),
//! measures what each build puts in flash, then runs the "s" build under
//! QEMU's mps2-an386 machine against the real responder here: the firmware's
//! UART is a TCP connection to this process (`-serial tcp:`), on which the
//! responder provisions the device, answers its handshake by reference (254
//! bytes on the wire), opens its records and acknowledges their samples. The
//! firmware reports its own peak stack and heap and the instructions of the
//! handshake (`-icount shift=0`, see firmware/src/cycles.rs) in its last frame.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost::Message;
use rand_core::{OsRng, RngCore};
use vitalgate_core::channel::{Record, SecureChannel};
use vitalgate_core::credential::{
    Credential, CredentialBody, KeyProtection, KnownCredential, KnownCredentials, Role, RoleSet,
    TrustStore,
};
use vitalgate_core::factor::FactorSet;
use vitalgate_core::handshake::{PeerDirectory, Responder, ResponderConfig};
use vitalgate_core::provider::{AwsLc, Secret32};
use vitalgate_core::replay::InMemoryReplayCache;
use vitalgate_core::signer::{Signer, SoftwareSigner};
use vitalgate_core::UnixTime;
use vitalgate_proto::v1;

/// The Rust target of the firmware.
pub(crate) const TARGET: &str = "thumbv7em-none-eabihf";
/// What the firmware's main loop sends (firmware/src/main.rs): 6 samples, 2 per record.
const SAMPLES: u64 = 6;
const RECORDS: usize = 3;
/// The report frame's first line.
const REPORT: &[u8] = b"vitalgate-firmware report\n";
/// How long the emulated device may take for anything (a build is not included).
const QEMU_TIMEOUT: Duration = Duration::from_secs(120);

/// The goals of issue 17.
pub(crate) const FLASH_GOAL: u64 = 64 * 1024;
pub(crate) const RAM_GOAL: u64 = 16 * 1024;

/// Sizes of one firmware build, from its ELF section headers.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Flash {
    /// Everything programmed into flash: vector table, code, read-only data
    /// and the initial image of `.data`.
    pub(crate) total: u64,
    pub(crate) text: u64,
    pub(crate) rodata: u64,
}

/// What one emulated run showed.
#[derive(Debug, Default)]
pub(crate) struct Run {
    pub(crate) handshake_ok: bool,
    pub(crate) handshake_wire_bytes: usize,
    pub(crate) records_decrypted: usize,
    pub(crate) samples: Vec<v1::VitalSample>,
    pub(crate) instructions: u64,
    pub(crate) stack_peak: u64,
    pub(crate) heap_peak: u64,
    pub(crate) static_ram: u64,
    pub(crate) dwt_cycles: u64,
    pub(crate) report: Vec<(String, u64)>,
}

impl Run {
    /// Statics (without the heap's arena, counted by its peak use instead),
    /// the heap's peak and the stack's peak, all during the handshake.
    pub(crate) fn peak_ram(&self) -> u64 {
        self.static_ram + self.heap_peak + self.stack_peak
    }
}

/// The repository's root (this crate is crates/bench).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Installs the Rust target with rustup when it is missing (and says so).
fn ensure_target() -> Result<(), String> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("rustup is needed to build the firmware: {e}"))?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == TARGET)
    {
        return Ok(());
    }
    eprintln!("vitalgate-bench device: installing the Rust target {TARGET} (rustup target add)");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .map_err(|e| format!("rustup target add {TARGET}: {e}"))?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| format!("rustup target add {TARGET} failed"))
}

/// Builds the firmware with `profile` (its own Cargo.toml's), into
/// target/firmware: a directory of the workspace's target of its own, so this
/// build never waits on the lock of a `cargo test` that runs it.
pub(crate) fn build(profile: &str) -> Result<PathBuf, String> {
    ensure_target()?;
    let firmware = root().join("firmware");
    let target_dir = root().join("target/firmware");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(&firmware)
        .args([
            "build",
            "--quiet",
            "--locked",
            "--profile",
            profile,
            "--target-dir",
        ])
        .arg(&target_dir)
        // The firmware's .cargo/config.toml gives the target and the linker
        // script; flags from the environment would replace its rustflags.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cargo build of firmware/: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo build of firmware/ ({profile}) failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let dir = if profile == "dev" { "debug" } else { profile };
    Ok(target_dir.join(TARGET).join(dir).join("vitalgate-firmware"))
}

/// Sums the ELF32 sections that occupy flash.
pub(crate) fn flash_of(elf: &Path) -> Result<Flash, String> {
    let bytes = std::fs::read(elf).map_err(|e| format!("{}: {e}", elf.display()))?;
    let bad = || format!("{}: not a little-endian ELF32 file", elf.display());
    if bytes.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 1, 1][..]) {
        return Err(bad());
    }
    let u16_at = |at: usize| -> Result<u64, String> {
        let b = bytes.get(at..at + 2).ok_or_else(bad)?;
        Ok(u64::from(u16::from_le_bytes([b[0], b[1]])))
    };
    let u32_at = |at: usize| -> Result<u64, String> {
        let b = bytes.get(at..at + 4).ok_or_else(bad)?;
        Ok(u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
    };
    let (shoff, shentsize, shnum, shstrndx) =
        (u32_at(0x20)?, u16_at(0x2e)?, u16_at(0x30)?, u16_at(0x32)?);
    let header = |i: u64| (shoff + i * shentsize) as usize;
    let names = u32_at(header(shstrndx) + 16)? as usize;
    let mut flash = Flash::default();
    for i in 0..shnum {
        let h = header(i);
        let (name, kind, flags, size) =
            (u32_at(h)?, u32_at(h + 4)?, u32_at(h + 8)?, u32_at(h + 20)?);
        const SHF_ALLOC: u64 = 2;
        const SHT_NOBITS: u64 = 8;
        if flags & SHF_ALLOC == 0 || kind == SHT_NOBITS {
            continue;
        }
        let start = names + name as usize;
        let name = bytes
            .get(start..)
            .and_then(|s| s.split(|&b| b == 0).next())
            .ok_or_else(bad)?;
        flash.total += size;
        match name {
            b".text" => flash.text += size,
            b".rodata" => flash.rodata += size,
            _ => {}
        }
    }
    Ok(flash)
}

fn key() -> SoftwareSigner<AwsLc> {
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    SoftwareSigner::<AwsLc>::from_seed(&Secret32::from_bytes(seed))
}

fn issue(
    ttp: &dyn Signer,
    serial: u64,
    role: Role,
    subject: &str,
    key: [u8; 32],
    now: u64,
) -> Credential {
    let body = CredentialBody {
        serial,
        role,
        subject: subject.as_bytes().to_vec(),
        public_key: key,
        not_before: (now - 3600) as u32,
        not_after: (now + 86_400) as u32,
        key_protection: KeyProtection::Software,
    };
    Credential::issue::<AwsLc>(body, ttp).expect("a well-formed credential is issued")
}

/// One frame of the firmware's UART framing: 2-byte big-endian length, bytes.
fn read_frame(stream: &mut TcpStream) -> Result<Vec<u8>, String> {
    let mut len = [0u8; 2];
    stream
        .read_exact(&mut len)
        .map_err(|e| format!("reading from the emulated device: {e}"))?;
    let mut frame = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream
        .read_exact(&mut frame)
        .map_err(|e| format!("reading from the emulated device: {e}"))?;
    Ok(frame)
}

fn write_frame(stream: &mut TcpStream, frame: &[u8]) -> Result<(), String> {
    let len = u16::try_from(frame.len()).map_err(|_| "frame over 64 KiB".to_string())?;
    stream
        .write_all(&[&len.to_be_bytes()[..], frame].concat())
        .map_err(|e| format!("writing to the emulated device: {e}"))
}

fn entry(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
}

/// The host's side: a TTP that issued both credentials, and an HSP that
/// already holds the device's (so both send references).
struct Host {
    trust: TrustStore,
    known: KnownCredentials,
    responder: ResponderConfig<AwsLc>,
    provisioning: Vec<u8>,
    now: u64,
}

impl Host {
    fn new() -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let (ttp, hsp) = (key(), key());
        let mut device_seed = [0u8; 32];
        OsRng.fill_bytes(&mut device_seed);
        let device_key = SoftwareSigner::<AwsLc>::from_seed(&Secret32::from_bytes(device_seed));
        let mut trust = TrustStore::new();
        trust.add_issuer::<AwsLc>(ttp.public_key());
        let hsp_cred = issue(
            &ttp,
            1,
            Role::Hsp,
            "hsp.general-hospital",
            hsp.public_key(),
            now,
        );
        let device_cred = issue(
            &ttp,
            2,
            Role::Device,
            "pseudonym-qemu-m4",
            device_key.public_key(),
            now,
        );
        let mut known = KnownCredentials::new();
        known
            .insert_verified::<AwsLc>(
                &trust,
                device_cred.clone(),
                RoleSet::only(Role::Device),
                UnixTime(now),
            )
            .expect("the device's credential is valid");
        let responder = ResponderConfig::new(
            Box::new(hsp),
            KnownCredential::new::<AwsLc>(hsp_cred.clone()),
            RoleSet::only(Role::Device),
        );
        let mut rng_seed = [0u8; 32];
        OsRng.fill_bytes(&mut rng_seed);
        let mut provisioning = Vec::new();
        entry(&mut provisioning, 1, &device_seed);
        entry(&mut provisioning, 2, &device_cred.encode());
        entry(&mut provisioning, 3, &ttp.public_key());
        entry(&mut provisioning, 4, &hsp_cred.encode());
        entry(&mut provisioning, 5, &[]);
        entry(&mut provisioning, 16, &rng_seed);
        entry(&mut provisioning, 17, &now.to_be_bytes());
        Self {
            trust,
            known,
            responder,
            provisioning,
            now,
        }
    }

    /// Provisions the device, answers its handshake, opens its records.
    fn serve(&self, stream: &mut TcpStream, run: &mut Run) -> Result<(), String> {
        let now = UnixTime(self.now);
        write_frame(stream, &self.provisioning)?;
        let m1 = read_frame(stream)?;
        let prefilter = InMemoryReplayCache::new(64);
        let (m2, state) = Responder::handle_m1(&self.responder, &m1, now, &mut OsRng, &prefilter)
            .map_err(|e| format!("M1 refused: {e}"))?;
        write_frame(stream, &m2)?;
        let m3 = read_frame(stream)?;
        let peers = PeerDirectory {
            trust: &self.trust,
            known: &self.known,
        };
        let verified = state
            .handle_m3(&m3, now, &peers)
            .map_err(|e| format!("M3 refused: {e}"))?;
        let durable = InMemoryReplayCache::new(64);
        let claim = verified.replay_entry().claim_in(&durable, self.now);
        let (m4, session) = verified
            .finish(FactorSet::EMPTY, FactorSet::EMPTY, claim)
            .map_err(|e| format!("M4 refused: {e}"))?;
        write_frame(stream, &m4)?;
        run.handshake_wire_bytes = m1.len() + m2.len() + m3.len() + m4.len();
        let mut channel: SecureChannel<AwsLc> = session.into_channel();
        loop {
            let frame = read_frame(stream)?;
            if let Some(report) = frame.strip_prefix(REPORT) {
                run.read_report(&String::from_utf8_lossy(report))?;
                return Ok(());
            }
            let Record::Data(plaintext) = channel
                .opener
                .open(&frame)
                .map_err(|e| format!("a record from the device did not open: {e}"))?
            else {
                return Err("the device closed the channel before its report".into());
            };
            let batch = v1::VitalsBatch::decode(plaintext.as_slice())
                .map_err(|e| format!("a record's batch did not decode: {e}"))?;
            run.records_decrypted += 1;
            let ack = v1::Ack {
                sequences: batch.samples.iter().map(|s| s.sequence).collect(),
                ..Default::default()
            };
            run.samples.extend(batch.samples);
            let sealed = channel
                .sealer
                .seal(&ack.encode_to_vec())
                .map_err(|e| format!("sealing an acknowledgement: {e}"))?;
            write_frame(stream, &sealed)?;
        }
    }
}

impl Run {
    fn read_report(&mut self, text: &str) -> Result<(), String> {
        for line in text.lines() {
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| format!("a report line is not key=value: {line:?}"))?;
            let value = value
                .parse()
                .map_err(|_| format!("a report value is not a number: {line:?}"))?;
            self.report.push((key.to_string(), value));
        }
        let get = |key: &str| {
            self.report
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| *v)
                .ok_or_else(|| format!("the report has no {key}"))
        };
        let ticks = get("handshake_ticks")?;
        // The calibration loop's known instruction count over its ticks.
        self.instructions =
            ticks * get("calibration_instructions")? / get("calibration_ticks")?.max(1);
        self.stack_peak = get("stack_peak_handshake")?;
        self.heap_peak = get("heap_peak_handshake")?;
        self.static_ram = get("static_bytes")?.saturating_sub(get("heap_arena_bytes")?);
        self.dwt_cycles = get("dwt_cycles")?;
        Ok(())
    }
}

/// Kills the emulator when dropped, whatever happened.
struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `elf` under QEMU against the host's responder.
pub(crate) fn run(elf: &Path) -> Result<Run, String> {
    let host = Host::new();
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("binding the device's link: {e}"))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("the device link's port: {e}"))?
        .port();
    let child = Command::new("qemu-system-arm")
        .args([
            "-machine",
            "mps2-an386",
            "-display",
            "none",
            "-monitor",
            "none",
        ])
        .args(["-semihosting-config", "enable=on,target=native"])
        .args(["-icount", "shift=0"])
        .arg("-serial")
        .arg(format!("tcp:127.0.0.1:{port}"))
        .arg("-kernel")
        .arg(elf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!(
                "qemu-system-arm could not start (Debian: apt-get install qemu-system-arm): {e}"
            )
        })?;
    let mut qemu = Qemu(child);
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("the device link: {e}"))?;
    let deadline = Instant::now() + QEMU_TIMEOUT;
    let mut stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Ok(Some(status)) = qemu.0.try_wait() {
                    return Err(format!(
                        "qemu-system-arm exited ({status}) before connecting{}",
                        output_of(&mut qemu)
                    ));
                }
                if Instant::now() > deadline {
                    return Err("qemu-system-arm did not connect its UART".into());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(format!("the device link: {e}")),
        }
    };
    stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(QEMU_TIMEOUT)))
        .map_err(|e| format!("the device link: {e}"))?;
    let mut run = Run::default();
    if let Err(e) = host.serve(&mut stream, &mut run) {
        return Err(format!("{e}{}", output_of(&mut qemu)));
    }
    // The firmware exits through semihosting once its report is out.
    let status = loop {
        match qemu.0.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => return Err("the emulated device did not exit after its report".into()),
        }
    };
    if !status.success() {
        return Err(format!(
            "the emulated device exited with {status}{}",
            output_of(&mut qemu)
        ));
    }
    let expected: Vec<u64> = (1..=SAMPLES).collect();
    let got: Vec<u64> = run.samples.iter().map(|s| s.sequence).collect();
    // The handshake counts as done only if the session it made carried every
    // record and the device saw its acknowledgements (its clean exit).
    // Each sample's values follow from its sequence (firmware/src/main.rs).
    let intact = run
        .samples
        .iter()
        .all(|s| s.heart_rate_bpm == 60.0 + s.sequence as f32 && s.spo2_percent == 97.0);
    run.handshake_ok = run.records_decrypted == RECORDS && got == expected && intact;
    Ok(run)
}

/// The emulator's own output (the firmware's semihosting messages), for an error.
fn output_of(qemu: &mut Qemu) -> String {
    let _ = qemu.0.kill();
    let mut text = String::new();
    if let Some(out) = qemu.0.stdout.as_mut() {
        let _ = out.read_to_string(&mut text);
    }
    if let Some(err) = qemu.0.stderr.as_mut() {
        let _ = err.read_to_string(&mut text);
    }
    match text.trim() {
        "" => String::new(),
        t => format!("\nqemu-system-arm said:\n{t}"),
    }
}

/// The whole measurement: both builds' flash, one emulated run.
pub(crate) fn report(json: bool) -> Result<(), String> {
    let elf_s = build("release")?;
    let elf_z = build("release-z")?;
    let (flash_s, flash_z) = (flash_of(&elf_s)?, flash_of(&elf_z)?);
    let run_z = run(&elf_z)?;
    let run = run(&elf_s)?;
    let row = serde_json::json!({
        "name": "device-thumbv7em",
        "target": TARGET,
        "machine": "qemu-system-arm mps2-an386 (Cortex-M4), -icount shift=0",
        "flash_bytes": flash_s.total,
        "flash_bytes_z": flash_z.total,
        "flash_text_bytes": flash_s.text,
        "flash_rodata_bytes": flash_s.rodata,
        "flash_text_bytes_z": flash_z.text,
        "flash_rodata_bytes_z": flash_z.rodata,
        "peak_ram_bytes": run.peak_ram(),
        "stack_peak_bytes": run.stack_peak,
        "heap_peak_bytes": run.heap_peak,
        "static_ram_bytes": run.static_ram,
        "instructions": run.instructions,
        "dwt_cycles": run.dwt_cycles,
        "handshake_wire_bytes": run.handshake_wire_bytes,
        "records_decrypted": run.records_decrypted,
        "samples_stored": run.samples.len(),
        "peak_ram_bytes_z": run_z.peak_ram(),
        "stack_peak_bytes_z": run_z.stack_peak,
        "heap_peak_bytes_z": run_z.heap_peak,
        "instructions_z": run_z.instructions,
        "handshake_ok": run.handshake_ok && run_z.handshake_ok,
    });
    if json {
        println!("{row}");
        return Ok(());
    }
    println!("vitalgate-bench device: the SDK's firmware on {TARGET} under QEMU mps2-an386\n");
    let goal = |value: u64, limit: u64| if value <= limit { "met" } else { "MISSED" };
    println!(
        "  flash, opt-level s      {:>8} B (text {}, rodata {})  goal <= {FLASH_GOAL}: {}",
        flash_s.total,
        flash_s.text,
        flash_s.rodata,
        goal(flash_s.total, FLASH_GOAL)
    );
    println!(
        "  flash, opt-level z      {:>8} B (text {}, rodata {})  goal <= {FLASH_GOAL}: {}",
        flash_z.total,
        flash_z.text,
        flash_z.rodata,
        goal(flash_z.total, FLASH_GOAL)
    );
    println!(
        "  peak RAM, handshake     {:>8} B (static {}, heap {}, stack {})  goal <= {RAM_GOAL}: {}",
        run.peak_ram(),
        run.static_ram,
        run.heap_peak,
        run.stack_peak,
        goal(run.peak_ram(), RAM_GOAL)
    );
    println!(
        "  peak RAM, handshake, z  {:>8} B (static {}, heap {}, stack {})  goal <= {RAM_GOAL}: {}",
        run_z.peak_ram(),
        run_z.static_ram,
        run_z.heap_peak,
        run_z.stack_peak,
        goal(run_z.peak_ram(), RAM_GOAL)
    );
    println!(
        "  instructions, handshake {:>8} (z: {})",
        run.instructions, run_z.instructions
    );
    println!(
        "  handshake on the wire   {:>8} B",
        run.handshake_wire_bytes
    );
    println!("  records decrypted       {:>8}", run.records_decrypted);
    println!(
        "  handshake ok            {:>8} (z: {})",
        run.handshake_ok, run_z.handshake_ok
    );
    println!("\n  the firmware's report (opt-level s):");
    for (key, value) in &run.report {
        println!("    {key:<32} {value}");
    }
    Ok(())
}
