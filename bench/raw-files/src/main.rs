//! The baseline of bench/run.sh's file case, what a user could write with
//! arrow-rs alone: every CSV file of a folder into a parquet file (snappy,
//! synced), the schema inferred from the first file, typed parsing straight
//! from the CSV reader. Prints `files <rows> <seconds>` as bench/streamlyr.R
//! does.
//!
//!     raw-files <csv-folder> <parquet-folder>

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::csv::reader::Format;
use arrow::csv::ReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (input, output) = (Path::new(&args[1]), Path::new(&args[2]));
    let t = Instant::now();
    std::fs::create_dir_all(output).expect("output folder");
    let mut files: Vec<PathBuf> = std::fs::read_dir(input)
        .expect("input folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    let (schema, _) = Format::default().with_header(true).infer_schema(File::open(&files[0]).expect("csv"), None).expect("schema");
    let schema = Arc::new(schema);
    let mut rows = 0;
    for (i, path) in files.iter().enumerate() {
        let reader = ReaderBuilder::new(schema.clone())
            .with_header(true)
            .with_batch_size(32_768)
            .build(File::open(path).expect("csv"))
            .expect("reader");
        let file = File::create(output.join(format!("part-{i:05}.snappy.parquet"))).expect("parquet file");
        let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
        let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).expect("writer");
        for batch in reader {
            let batch = batch.expect("csv rows");
            rows += batch.num_rows();
            writer.write(&batch).expect("write");
        }
        writer.into_inner().expect("footer").sync_all().expect("sync");
    }
    println!("files {rows} {:.4}", t.elapsed().as_secs_f64());
}
