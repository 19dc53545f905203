//! The example runs to completion and writes one decodable PNG per job.

use std::process::Command;

#[test]
fn the_example_writes_one_png_per_job() {
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_example-custom-renderer"))
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success());
    let mut written: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    written.sort();
    assert_eq!(written.len(), 3, "{written:?}");
    for path in written {
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut pixels).unwrap();
        assert_eq!((info.width, info.height), (640, 320));
        assert!(
            pixels.chunks(3).any(|p| p == [31, 119, 180]),
            "{} has bars",
            path.display()
        );
    }
}
