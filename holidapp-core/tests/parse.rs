//! Data set parsing and loading: the real samples, every format, hostile input, and sources.

use holidapp_core::Error;
use holidapp_core::plot::DataSet;
use holidapp_core::plot::parse::{
    BUNDLED_HGNC, BUNDLED_METEORITES, DataLimits, MAX_FIELDS, MAX_ID_LEN, MAX_LINE_BYTES, bundled,
    parse, parse_json, parse_json_object, parse_with,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const HGNC_TSV: &[u8] = include_bytes!("../data/hgnc_reduced_set.txt");
const METEORITES_JSON: &[u8] = include_bytes!("../data/ML_Data_Sample.json");

fn record<'a>(data: &'a DataSet, id: &str) -> &'a holidapp_core::plot::Record {
    data.records
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("no record {id}"))
}

fn invalid_message(result: holidapp_core::Result<DataSet>) -> String {
    match result {
        Err(Error::InvalidData(msg)) => msg,
        Err(other) => panic!("expected InvalidData, got {other:?}"),
        Ok(data) => panic!("expected InvalidData, got {} records", data.len()),
    }
}

#[test]
fn the_hgnc_sample_parses_with_its_real_values() {
    let data = parse(HGNC_TSV).unwrap();
    assert_eq!(data.len(), 266);
    assert_eq!(data.records[0].id, "HGNC:25662");

    let aagab = record(&data, "HGNC:25662");
    assert_eq!(aagab.text("symbol").as_deref(), Some("AAGAB"));
    assert_eq!(
        aagab.text("date_approved_reserved").as_deref(),
        Some("2009-07-20")
    );
    assert_eq!(
        aagab.text("locus_group").as_deref(),
        Some("protein-coding gene")
    );
    // Quotes around multi-value cells are removed; empty cells are absent.
    assert_eq!(aagab.text("alias_symbol").as_deref(), Some("FLJ11506|p34"));
    assert!(!aagab.fields.contains_key("alias_name"));
    assert_eq!(aagab.text("hgnc_id").as_deref(), Some("HGNC:25662"));

    let actr3 = record(&data, "HGNC:170");
    assert_eq!(
        actr3.text("gene_family_id").as_deref(),
        Some("39|1436"),
        "quoted cells lose their quotes"
    );
    // This row is shorter than the header: trailing cells are absent, not an error.
    assert!(!actr3.fields.contains_key("rna_central_ids"));

    // Rows longer than the header keep the extra cells under positional names.
    let smn1 = record(&data, "HGNC:11117");
    assert_eq!(smn1.text("symbol").as_deref(), Some("SMN1"));
    assert_eq!(smn1.text("column_52").as_deref(), Some("HGNC:11117"));
    assert_eq!(
        smn1.text("column_53").as_deref(),
        Some("ENST00000380707.9|NM_000344.4")
    );
    assert!(
        !smn1.fields.contains_key("column_50"),
        "empty extras are absent"
    );
}

#[test]
fn the_meteorite_sample_parses_with_its_real_values() {
    let data = parse(METEORITES_JSON).unwrap();
    assert_eq!(data.len(), 300);
    let first = &data.records[0];
    assert_eq!(first.id, "10001");
    assert_eq!(first.text("name").as_deref(), Some("Gerald"));
    assert_eq!(first.text("recclass").as_deref(), Some("H4"));
    assert_eq!(first.number("reclat"), Some(-75.6691));
    assert_eq!(data.records[299].id, "10300");
    assert_eq!(data.records[299].text("name").as_deref(), Some("Christina"));
}

#[test]
fn the_bundled_samples_are_the_shipped_files() {
    assert_eq!(bundled("hgnc").unwrap(), parse(HGNC_TSV).unwrap());
    assert_eq!(
        bundled("meteorites").unwrap(),
        parse(METEORITES_JSON).unwrap()
    );
    assert!(bundled("nope").is_none());
}

#[test]
fn hgnc_complete_set_json_uses_hgnc_id() {
    let body = br#"{
        "responseHeader": {"status": 0},
        "response": {"numFound": 2, "start": 0, "docs": [
            {"hgnc_id": "HGNC:5", "symbol": "A1BG", "locus_group": "protein-coding gene",
             "date_approved_reserved": "1989-06-30", "alias_symbol": ["x", "y"]},
            {"hgnc_id": "HGNC:37133", "symbol": "A1BG-AS1", "locus_group": "non-coding RNA"}
        ]}
    }"#;
    let data = parse(body).unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data.records[0].id, "HGNC:5");
    assert_eq!(data.records[1].id, "HGNC:37133");
    assert_eq!(data.records[0].fields["alias_symbol"], json!(["x", "y"]));
    assert_eq!(
        data.records[1].text("locus_group").as_deref(),
        Some("non-coding RNA")
    );
}

#[test]
fn plain_arrays_take_id_then_hgnc_id_then_the_position() {
    let with_ids = parse(br#"[{"id": 7, "v": 1}, {"id": "x", "v": 2}]"#).unwrap();
    let ids: Vec<&str> = with_ids.records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["7", "x"]);

    let genes = parse(br#"[{"hgnc_id": "HGNC:1"}, {"hgnc_id": "HGNC:2"}]"#).unwrap();
    assert_eq!(genes.records[1].id, "HGNC:2");

    let anonymous = parse(br#"[{"a": 1}, {"a": 2}, {"a": 3}]"#).unwrap();
    let ids: Vec<&str> = anonymous.records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["0", "1", "2"]);
    assert_eq!(anonymous.records[2].number("a"), Some(3.0));
}

#[test]
fn tsv_without_hgnc_id_uses_id_or_the_position() {
    let with_id = parse(b"id\tname\r\nb7\tSeven\r\n").unwrap();
    assert_eq!(with_id.records[0].id, "b7");
    assert_eq!(with_id.records[0].text("name").as_deref(), Some("Seven"));

    let anonymous = parse(b"\xEF\xBB\xBFa\tb\n1\t2\n\n3\t4\n").unwrap();
    assert_eq!(anonymous.len(), 2, "blank lines are skipped");
    assert_eq!(anonymous.records[1].id, "1");
    assert_eq!(anonymous.records[1].text("a").as_deref(), Some("3"));
}

#[test]
fn json_declared_as_json_tells_bad_syntax_from_a_bad_shape() {
    let limits = DataLimits::default();
    let body = json!({"meteorite_landings": [{"id": 1, "recclass": "L6"}]}).to_string();
    let data = parse_json(body.as_bytes(), &limits).unwrap();
    assert_eq!(data.records[0].id, "1");
    assert!(matches!(
        parse_json(b"null", &limits),
        Err(Error::InvalidData(msg)) if msg.contains("null")
    ));
    assert!(matches!(
        parse_json(b"[{\"id\": 1}", &limits),
        Err(Error::MalformedJson(_))
    ));
    // Both layouts in one document: refused, in either order, valid or not.
    for both in [
        r#"{"meteorite_landings": [{"id": 1}], "response": {"docs": [{"hgnc_id": "H:1"}]}}"#,
        r#"{"response": {"docs": [{"hgnc_id": "H:1"}]}, "meteorite_landings": [{"id": 1}]}"#,
        r#"{"response": {"docs": [{"hgnc_id": "H:1"}]}, "meteorite_landings": 5}"#,
    ] {
        for parsed in [
            parse_json(both.as_bytes(), &limits),
            parse_json_object(both.as_bytes(), &limits),
        ] {
            assert!(
                matches!(&parsed, Err(Error::InvalidData(msg)) if msg.contains("both layouts")),
                "{both}: {parsed:?}"
            );
        }
    }
}

#[test]
fn a_json_document_sent_as_json_is_an_object_and_arrays_are_read_from_text() {
    let limits = DataLimits::default();
    let array = br#"[{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]"#;
    assert_eq!(parse_json(array, &limits).unwrap().len(), 2);
    assert_eq!(parse_with(array, &limits).unwrap().len(), 2);
    for refused in [&array[..], b"[]", b"  [1, 2", b"[{\"id\": 1}]"] {
        let parsed = parse_json_object(refused, &limits);
        assert!(
            matches!(&parsed, Err(Error::InvalidData(msg)) if msg.contains("text/tab-separated-values")),
            "{parsed:?}"
        );
    }
    let hgnc = br#"{"response": {"docs": [{"hgnc_id": "HGNC:5"}]}, "responseHeader": {}}"#;
    assert_eq!(
        parse_json_object(hgnc, &limits).unwrap().records[0].id,
        "HGNC:5"
    );
}

#[test]
fn integer_ids_are_exact_and_may_carry_a_zero_fraction_or_an_exponent() {
    let limits = DataLimits::default();
    let body = br#"{"meteorite_landings": [{"id": 5.0}, {"id": 6e0}, {"id": -7.0},
        {"id": 9007199254740991}, {"id": -9.007199254740991e15}]}"#;
    let ids: Vec<String> = parse_json_object(body, &limits)
        .unwrap()
        .records
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        ids,
        ["5", "6", "-7", "9007199254740991", "-9007199254740991"]
    );
    // Past 2^53 - 1 either side, an integer may have been rounded by the time it is read: the
    // last one would read as -2^63.
    for refused in [
        &br#"{"meteorite_landings": [{"id": 5.5}]}"#[..],
        br#"{"meteorite_landings": [{"id": 1e20}]}"#,
        br#"{"meteorite_landings": [{"id": 9007199254740992}]}"#,
        br#"{"meteorite_landings": [{"id": -9007199254740992}]}"#,
        br#"{"meteorite_landings": [{"id": 18446744073709551615}]}"#,
        br#"{"meteorite_landings": [{"id": -9223372036854775809}]}"#,
        br#"{"meteorite_landings": [{"id": 5}, {"id": 5.0}]}"#,
    ] {
        assert!(matches!(
            parse_json_object(refused, &limits),
            Err(Error::InvalidData(_))
        ));
    }
}

fn too_large(result: holidapp_core::Result<DataSet>) -> String {
    match result {
        Err(Error::DataTooLarge(msg)) => msg,
        Err(other) => panic!("expected DataTooLarge, got {other:?}"),
        Ok(data) => panic!("expected DataTooLarge, got {} records", data.len()),
    }
}

#[test]
fn data_sets_past_their_limits_are_refused_whatever_the_format() {
    let limits = DataLimits {
        max_bytes: 1 << 20,
        max_records: 3,
        max_memory: 64 * 1024,
    };
    // Size, before any parsing.
    let big = vec![b' '; (1 << 20) + 1];
    assert!(too_large(parse_with(&big, &limits)).contains("larger than 1 MiB"));
    // Records, in both formats.
    let four = br#"[{"id": 1}, {"id": 2}, {"id": 3}, {"id": 4}]"#;
    assert!(too_large(parse_json(four, &limits)).contains("more than 3 records"));
    let tsv = b"id\tv\n1\ta\n2\tb\n3\tc\n4\td\n";
    assert!(too_large(parse_with(tsv, &limits)).contains("more than 3 records"));
    assert_eq!(parse_with(&tsv[..tsv.len() - 4], &limits).unwrap().len(), 3);
    // Memory: 100 KB of small numbers would take over a megabyte as JSON values.
    let numbers = format!(r#"[{{"id": 1, "n": [{}1]}}]"#, "1,".repeat(50_000));
    assert!(too_large(parse_json(numbers.as_bytes(), &limits)).contains("MiB of memory"));
    let cells = format!("id\tv\n1\t{}\n", "x".repeat(100_000));
    assert!(too_large(parse_with(cells.as_bytes(), &limits)).contains("MiB of memory"));
    // Fields of one record.
    let fields: Vec<String> = (0..=MAX_FIELDS).map(|i| format!(r#""f{i}": 1"#)).collect();
    let wide = format!(r#"[{{"id": 1, {}}}]"#, fields.join(", "));
    let generous = DataLimits::default();
    assert!(too_large(parse_json(wide.as_bytes(), &generous)).contains("more than 1024 fields"));
}

#[test]
fn tsv_lines_and_columns_are_capped_and_checked_in_linear_time() {
    let limits = DataLimits::default();
    // A 5 MB header line: refused at once, not scanned column by column.
    let mut header = "c\t".repeat(5 * 1024 * 1024 / 2).into_bytes();
    header.extend_from_slice(b"\n1\t2\n");
    assert!(too_large(parse_with(&header, &limits)).contains("line 1 is longer than"));
    // As many columns as allowed, all distinct: accepted.
    let names: Vec<String> = (0..MAX_FIELDS).map(|i| format!("c{i}")).collect();
    let row: Vec<String> = (0..MAX_FIELDS).map(|i| i.to_string()).collect();
    let widest = format!("{}\n{}\n", names.join("\t"), row.join("\t"));
    assert_eq!(parse_with(widest.as_bytes(), &limits).unwrap().len(), 1);
    // One more in the header, or in a row: refused.
    let more = format!("{}\tc_last\n1\t2\n", names.join("\t"));
    assert!(too_large(parse_with(more.as_bytes(), &limits)).contains("more than 1024 columns"));
    let long_row = format!("a\tb\n{}\n", vec!["x"; MAX_FIELDS + 1].join("\t"));
    assert!(too_large(parse_with(long_row.as_bytes(), &limits)).contains("line 2 has more"));
    let long_line = format!("a\tb\n1\t{}\n", "y".repeat(MAX_LINE_BYTES));
    assert!(too_large(parse_with(long_line.as_bytes(), &limits)).contains("line 2 is longer"));
    // A repeated name late in a wide header is still found.
    let repeated = format!("{}\tc7\n", names[..1000].join("\t"));
    assert!(invalid_message(parse_with(repeated.as_bytes(), &limits)).contains("'c7' twice"));
}

/// Input that must be refused, and a fragment of the message that says why.
fn hostile_inputs() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let long_id = "x".repeat(MAX_ID_LEN + 1);
    let mut random = Vec::with_capacity(1 << 20);
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    while random.len() < (1 << 20) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        random.extend_from_slice(&state.to_le_bytes());
    }
    vec![
        ("empty", vec![], "empty"),
        ("blank", b" \n\t\r\n".to_vec(), "empty"),
        (
            "truncated JSON",
            br#"{"response": {"docs": [{"hgnc_id": "HGNC:1""#.to_vec(),
            "not valid JSON",
        ),
        ("scalar JSON", b"42".to_vec(), "unrecognised format"),
        (
            "unknown object",
            br#"{"genes": []}"#.to_vec(),
            "unrecognised JSON object (keys: genes)",
        ),
        (
            "response not an object",
            br#"{"response": [1]}"#.to_vec(),
            "'response' is an array",
        ),
        (
            "response without docs",
            br#"{"response": {"numFound": 0}}"#.to_vec(),
            "no 'docs'",
        ),
        (
            "docs not an array",
            br#"{"response": {"docs": {"hgnc_id": "HGNC:1"}}}"#.to_vec(),
            "'response.docs' is an object",
        ),
        (
            "landings not an array",
            br#"{"meteorite_landings": "none"}"#.to_vec(),
            "'meteorite_landings' is a string",
        ),
        (
            "record not an object",
            br#"{"response": {"docs": [{"hgnc_id": "HGNC:1"}, 5]}}"#.to_vec(),
            "response.docs[1] is a number",
        ),
        (
            "gene without hgnc_id",
            br#"{"response": {"docs": [{"symbol": "A"}]}}"#.to_vec(),
            "response.docs[0] has no 'hgnc_id'",
        ),
        (
            "meteorite without id",
            br#"{"meteorite_landings": [{"id": "1"}, {"name": "x"}]}"#.to_vec(),
            "meteorite_landings[1] has no 'id'",
        ),
        (
            "id is an object",
            br#"[{"id": {"a": 1}}]"#.to_vec(),
            "[0].id is an object",
        ),
        (
            "id is a fraction",
            br#"[{"id": 1.5}]"#.to_vec(),
            "[0].id is a number with a fraction; an id must be a string or an integer",
        ),
        ("blank id", br#"[{"id": " "}]"#.to_vec(), "[0].id is empty"),
        (
            "id with a control character",
            br#"[{"id": "a\u0000b"}]"#.to_vec(),
            "control characters",
        ),
        (
            "id too long",
            format!(r#"[{{"id": "{long_id}"}}]"#).into_bytes(),
            "longer than 256",
        ),
        (
            "some array items without id",
            br#"[{"id": 1}, {"name": "x"}]"#.to_vec(),
            "[1] has no 'id'",
        ),
        (
            "duplicate JSON ids",
            br#"[{"id": 1}, {"id": "2"}, {"id": "1"}]"#.to_vec(),
            "duplicate id '1' at [0] and [2]",
        ),
        ("empty array", b"[]".to_vec(), "the data set is empty"),
        (
            "no landings",
            br#"{"meteorite_landings": []}"#.to_vec(),
            "the data set is empty",
        ),
        (
            "TSV header only",
            b"hgnc_id\tsymbol\n".to_vec(),
            "the data set is empty",
        ),
        (
            "ragged TSV row",
            b"hgnc_id\tsymbol\nHGNC:1\tA\nHGNC:2\n".to_vec(),
            "line 3 has 1 column but the header has 2",
        ),
        (
            "TSV row without its id",
            b"hgnc_id\tsymbol\n\tA\n".to_vec(),
            "line 2 has no hgnc_id",
        ),
        (
            "duplicate TSV ids",
            b"hgnc_id\tsymbol\nHGNC:1\tA\nHGNC:1\tB\n".to_vec(),
            "duplicate id 'HGNC:1' at line 2 and line 3",
        ),
        (
            "blank header column",
            b"a\t\tb\n1\t2\t3\n".to_vec(),
            "column 2 of the header line is blank",
        ),
        (
            "repeated header column",
            b"a\tb\ta\n1\t2\t3\n".to_vec(),
            "names column 'a' twice",
        ),
        (
            "extra cells whose name is taken",
            b"a\tcolumn_3\n1\t2\t3\n".to_vec(),
            "column_3, is taken",
        ),
        (
            "non-UTF-8 TSV",
            b"a\tb\n1\t2\n\xff\xfe\t3\n".to_vec(),
            "line 3 is not valid UTF-8",
        ),
        (
            "non-UTF-8 JSON",
            b"[{\"id\": \"\xff\"}]".to_vec(),
            "not valid JSON",
        ),
        (
            "binary garbage after a TSV header",
            [b"hgnc_id\tsymbol\n".as_slice(), &random].concat(),
            "line 2 is not valid UTF-8",
        ),
        ("binary garbage", random, "unrecognised format"),
        (
            "30 MB without a tab",
            vec![b'x'; 30 * 1024 * 1024],
            "unrecognised format",
        ),
        (
            "30 MB of garbage after a bracket",
            {
                let mut v = vec![b'#'; 30 * 1024 * 1024];
                v[0] = b'[';
                v
            },
            "not valid JSON",
        ),
        (
            "nested 100,000 deep",
            "[".repeat(100_000).into_bytes(),
            "[0] is an array; every record must be a JSON object",
        ),
        (
            "a field nested 100,000 deep",
            format!(r#"[{{"id": 1, "a": {}"#, "[".repeat(100_000)).into_bytes(),
            "recursion limit exceeded",
        ),
    ]
}

#[test]
fn hostile_input_is_refused_with_a_short_message_that_says_why() {
    for (name, input, fragment) in hostile_inputs() {
        let msg = invalid_message(parse(&input));
        assert!(
            msg.contains(fragment),
            "{name}: message {msg:?} should contain {fragment:?}"
        );
        assert!(msg.len() <= 300, "{name}: message is too long: {msg:?}");
    }
}

async fn load_source(source: &str) -> holidapp_core::Result<DataSet> {
    holidapp_core::plot::parse::load_source(source, &DataLimits::default()).await
}

fn write_temp(bytes: &[u8]) -> tempfile::NamedTempFile {
    use std::io::Write;
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(bytes).unwrap();
    file
}

#[tokio::test]
async fn load_source_reads_files_and_bundled_samples() {
    let file = write_temp(br#"[{"id": "a", "year": 1999}]"#);
    let data = load_source(file.path().to_str().unwrap()).await.unwrap();
    assert_eq!(data.records[0].id, "a");

    let tsv = write_temp(HGNC_TSV);
    assert_eq!(
        load_source(tsv.path().to_str().unwrap())
            .await
            .unwrap()
            .len(),
        266
    );
    assert_eq!(load_source(BUNDLED_HGNC).await.unwrap().len(), 266);
    assert_eq!(load_source(BUNDLED_METEORITES).await.unwrap().len(), 300);

    match load_source("bundled:genes").await {
        Err(Error::Source(msg)) => assert!(msg.contains("bundled:hgnc"), "{msg}"),
        other => panic!("expected a source error, got {other:?}"),
    }
}

#[tokio::test]
async fn load_source_reports_missing_files_and_bad_content() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.json");
    match load_source(missing.to_str().unwrap()).await {
        Err(Error::Source(msg)) => assert!(msg.contains("absent.json"), "{msg}"),
        other => panic!("expected a source error, got {other:?}"),
    }
    let garbage = write_temp(b"hello world");
    match load_source(garbage.path().to_str().unwrap()).await {
        Err(Error::InvalidData(msg)) => {
            assert!(msg.starts_with(garbage.path().to_str().unwrap()), "{msg}");
            assert!(msg.contains("unrecognised format"), "{msg}");
        }
        other => panic!("expected invalid data, got {other:?}"),
    }
    assert!(matches!(load_source("").await, Err(Error::Source(_))));
}

/// Serves one canned HTTP answer on a fresh local port and returns the URL to fetch.
async fn serve_once(answer: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            if n == 0 {
                return;
            }
            request.extend_from_slice(&buf[..n]);
        }
        assert!(request.starts_with(b"GET /data.json HTTP/1.1\r\n"));
        socket.write_all(&answer).await.unwrap();
        socket.shutdown().await.unwrap();
    });
    format!("http://{addr}/data.json")
}

/// Serves canned answers by path, on as many connections as come, on a fresh local port.
/// Returns the server's base URL and how many requests it has had.
async fn serve_paths(
    routes: Vec<(&'static str, Vec<u8>)>,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::Ordering;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            counted.fetch_add(1, Ordering::SeqCst);
            let line = String::from_utf8_lossy(&request)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned();
            let answer = routes
                .iter()
                .find(|(path, _)| line.starts_with(&format!("GET {path} ")))
                .map(|(_, answer)| answer.clone())
                .unwrap_or_else(|| http_answer("404 Not Found", "", b""));
            let _ = socket.write_all(&answer).await;
            let _ = socket.shutdown().await;
        }
    });
    (format!("http://{addr}"), hits)
}

#[tokio::test]
async fn redirects_are_followed_within_the_origin_only() {
    use std::sync::atomic::Ordering;
    let (base, _) = serve_paths(vec![
        (
            "/data.json",
            http_answer("302 Found", "Location: /moved.json\r\n", b""),
        ),
        ("/moved.json", http_answer("200 OK", "", METEORITES_JSON)),
    ])
    .await;
    assert_eq!(
        load_source(&format!("{base}/data.json"))
            .await
            .unwrap()
            .len(),
        300
    );

    // Another origin (another port of the same host) is never asked.
    let (elsewhere, asked) =
        serve_paths(vec![("/x", http_answer("200 OK", "", METEORITES_JSON))]).await;
    let away = format!("Location: {elsewhere}/x\r\n");
    let (base, _) = serve_paths(vec![("/data.json", http_answer("302 Found", &away, b""))]).await;
    match load_source(&format!("{base}/data.json")).await {
        Err(Error::Source(msg)) => assert!(msg.contains("another origin"), "{msg}"),
        other => panic!("expected a source error, got {other:?}"),
    }
    assert_eq!(
        asked.load(Ordering::SeqCst),
        0,
        "the other origin was contacted"
    );
}

fn http_answer(status: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut answer = format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(body);
    answer
}

#[tokio::test]
async fn load_source_fetches_urls() {
    let url = serve_once(http_answer("200 OK", "", METEORITES_JSON)).await;
    let data = load_source(&url).await.unwrap();
    assert_eq!(data.len(), 300);
    assert_eq!(data.records[0].text("name").as_deref(), Some("Gerald"));
}

#[tokio::test]
async fn load_source_reports_http_errors() {
    let url = serve_once(http_answer("404 Not Found", "", b"no such file")).await;
    match load_source(&url).await {
        Err(Error::Source(msg)) => {
            assert!(msg.contains("404"), "{msg}");
            assert!(msg.contains(&url), "{msg}");
        }
        other => panic!("expected a source error, got {other:?}"),
    }

    // An announced body over the cap is refused before it is read.
    let huge = b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n[".to_vec();
    let url = serve_once(huge).await;
    match load_source(&url).await {
        Err(Error::DataTooLarge(msg)) => assert!(msg.contains("larger than 32 MiB"), "{msg}"),
        other => panic!("expected a size error, got {other:?}"),
    }

    // A body cut short is a source error, not half a data set.
    let cut = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n[{\"id\": 1}]".to_vec();
    let url = serve_once(cut).await;
    assert!(matches!(load_source(&url).await, Err(Error::Source(_))));

    let url = serve_once(http_answer("200 OK", "", b"<html>not data</html>")).await;
    match load_source(&url).await {
        Err(Error::InvalidData(msg)) => assert!(msg.starts_with(&url), "{msg}"),
        other => panic!("expected invalid data, got {other:?}"),
    }
}

#[tokio::test]
async fn load_source_reports_a_refused_connection() {
    // Bind and drop a listener: nothing listens on that port any more.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/data.json");
    match load_source(&url).await {
        Err(Error::Source(msg)) => {
            assert!(msg.contains(&url), "{msg}");
            assert!(msg.to_lowercase().contains("refused"), "{msg}");
        }
        other => panic!("expected a source error, got {other:?}"),
    }
}

#[tokio::test]
async fn urls_in_messages_hide_passwords() {
    let url = serve_once(http_answer("500 Internal Server Error", "", b"")).await;
    let with_password = url.replace("http://", "http://user:secret@");
    match load_source(&with_password).await {
        Err(Error::Source(msg)) => {
            assert!(!msg.contains("secret"), "{msg}");
            assert!(msg.contains("500"), "{msg}");
        }
        other => panic!("expected a source error, got {other:?}"),
    }
}
