//! Realistic sample complaints: Indonesian prose built from a word list (so
//! compression is measured honestly, not on random bytes or repeated text),
//! Gayo Lues / Aceh places, and synthetic reporter identities whose NIKs and
//! phone numbers are structurally valid but belong to nobody.

use rand::Rng;
use rand::seq::IndexedRandom as _;

use lapor_shared::proto::v1;

const WORDS: &[&str] = &[
    "jalan",
    "desa",
    "rusak",
    "berlubang",
    "sejak",
    "banjir",
    "bulan",
    "lalu",
    "warga",
    "kesulitan",
    "menuju",
    "pasar",
    "sekolah",
    "puskesmas",
    "air",
    "bersih",
    "tidak",
    "mengalir",
    "selama",
    "minggu",
    "listrik",
    "padam",
    "setiap",
    "malam",
    "pelayanan",
    "kantor",
    "camat",
    "lambat",
    "petugas",
    "meminta",
    "biaya",
    "tambahan",
    "untuk",
    "pengurusan",
    "kartu",
    "keluarga",
    "akta",
    "kelahiran",
    "bantuan",
    "sosial",
    "belum",
    "diterima",
    "oleh",
    "keluarga",
    "miskin",
    "di",
    "kampung",
    "kami",
    "mohon",
    "segera",
    "ditindaklanjuti",
    "karena",
    "anak-anak",
    "harus",
    "berjalan",
    "jauh",
    "jembatan",
    "gantung",
    "hampir",
    "putus",
    "saat",
    "hujan",
    "deras",
    "sungai",
    "meluap",
    "guru",
    "jarang",
    "hadir",
    "obat",
    "kosong",
    "bidan",
    "desa",
    "pupuk",
    "bersubsidi",
    "langka",
    "harga",
    "naik",
    "petani",
    "kopi",
    "gayo",
    "mengeluh",
    "sinyal",
    "telepon",
    "hilang",
    "dana",
    "desa",
    "penggunaan",
    "tidak",
    "transparan",
    "laporan",
    "pertanggungjawaban",
    "tidak",
    "diumumkan",
    "kepada",
    "masyarakat",
    "sampah",
    "menumpuk",
    "di",
    "pinggir",
    "jalan",
    "bau",
    "menyengat",
    "mengganggu",
    "kesehatan",
    "ambulans",
    "tidak",
    "tersedia",
    "ketika",
    "dibutuhkan",
    "pasien",
    "rujukan",
    "ke",
    "rumah",
    "sakit",
    "kabupaten",
    "terlambat",
    "tangani",
    "dengan",
    "serius",
    "terima",
    "kasih",
    "atas",
    "perhatian",
    "bapak",
    "ibu",
];

const PLACES: &[(&str, &str)] = &[
    ("11.13.01", "Blangkejeren, dekat pasar"),
    ("11.13.02", "Kutapanjang, jalan menuju Kampung Bener"),
    ("11.13.03", "Rikit Gaib, jembatan gantung"),
    ("11.04.01", "Lut Tawar, tepi danau"),
    ("11.04.05", "Bebesen, depan puskesmas"),
    ("11.71.01", "Meuraxa, Banda Aceh"),
    ("11.71.04", "Kuta Alam, simpang lima"),
];

const NAMES: &[&str] = &[
    "Siti Rahmah",
    "Muhammad Yusuf",
    "Aminah",
    "Teuku Ridwan",
    "Cut Nurul",
    "Ahmad Fauzi",
    "Rina Marlina",
    "Zainal Abidin",
];

/// `words` words of Indonesian complaint prose.
pub fn prose(rng: &mut impl Rng, words: usize) -> String {
    let mut out = String::with_capacity(words * 8);
    for i in 0..words {
        if i > 0 {
            out.push(if i % 14 == 0 { '.' } else { ' ' });
            if i % 14 == 0 {
                out.push(' ');
            }
        }
        out.push_str(WORDS.choose(rng).copied().unwrap_or("warga"));
    }
    out.push('.');
    out
}

/// A synthetic NIK: a Gayo Lues prefix, a valid birth date (women +40), a
/// sequence number. Structurally valid, belongs to nobody.
pub fn nik(rng: &mut impl Rng) -> String {
    let day = rng.random_range(1..=28) + if rng.random_bool(0.5) { 40 } else { 0 };
    format!(
        "111301{day:02}{:02}{:02}{:04}",
        rng.random_range(1..=12),
        rng.random_range(50..=99),
        rng.random_range(1..=9999)
    )
}

/// A synthetic Telkomsel-style mobile number.
pub fn phone(rng: &mut impl Rng) -> String {
    format!("0812{:08}", rng.random_range(0..100_000_000u32))
}

/// A complaint intake for `district` ("11.13") with a body of about
/// `body_bytes` bytes. Every fifth is anonymous (no identity at all).
pub fn intake(rng: &mut impl Rng, district: &str, body_bytes: usize) -> v1::ComplaintIntake {
    let places: Vec<_> = PLACES
        .iter()
        .filter(|(code, _)| code.starts_with(district))
        .collect();
    let (region, description) = places
        .choose(rng)
        .map(|p| (p.0.to_owned(), p.1.to_owned()))
        .unwrap_or((format!("{district}.01"), "kantor kecamatan".into()));
    let anonymous = rng.random_ratio(1, 5);
    let mut body = prose(rng, body_bytes / 7);
    body.truncate(body.floor_char_boundary(body_bytes));
    v1::ComplaintIntake {
        classification: v1::Classification::Pengaduan as i32,
        channel: [
            v1::Channel::WalkIn,
            v1::Channel::Sms1708,
            v1::Channel::Letter,
            v1::Channel::Web,
        ]
        .choose(rng)
        .copied()
        .unwrap_or(v1::Channel::WalkIn) as i32,
        category: [
            "Infrastruktur",
            "Kesehatan",
            "Pendidikan",
            "Administrasi Kependudukan",
            "Bantuan Sosial",
        ]
        .choose(rng)
        .copied()
        .unwrap_or("Lainnya")
        .into(),
        title: {
            let mut t = prose(rng, 6);
            t.truncate(t.floor_char_boundary(120));
            t
        },
        body,
        location: Some(v1::Location {
            region_code: region,
            description,
            latitude: None,
            longitude: None,
        }),
        incident_date: Some(v1::Date {
            year: 2026,
            month: rng.random_range(1..=11),
            day: rng.random_range(1..=28),
        }),
        privacy: Some(v1::Privacy {
            is_anonymous: anonymous,
            is_secret: rng.random_ratio(1, 10),
        }),
        reporter: (!anonymous).then(|| v1::ReporterIdentity {
            name: NAMES.choose(rng).copied().unwrap_or("Warga").into(),
            nik: nik(rng),
            phone: phone(rng),
            email: String::new(),
        }),
    }
}
