use crate::{write_atomic, ReportError};
use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use std::path::Path;
use std::sync::Arc;

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A matrix as CSV: a header `layer,<col names...>`, then one row per row name. Undefined values
/// are empty fields (pandas and polars read them as missing). Values keep full f64 precision.
pub fn matrix_csv(rows: &[String], cols: &[String], values: &[Vec<Option<f64>>]) -> String {
    let mut out = String::from("layer");
    for c in cols {
        out.push(',');
        out.push_str(&csv_field(c));
    }
    out.push('\n');
    for (r, row) in rows.iter().zip(values) {
        out.push_str(&csv_field(r));
        for v in row {
            out.push(',');
            if let Some(v) = v {
                out.push_str(&format!("{v}"));
            }
        }
        out.push('\n');
    }
    out
}

/// The same matrix as Parquet: a `layer` string column, then one nullable float64 column per
/// column name, so `pandas.read_parquet(path).set_index("layer")` gives the matrix back.
pub fn write_matrix_parquet(
    path: &Path,
    rows: &[String],
    cols: &[String],
    values: &[Vec<Option<f64>>],
) -> Result<(), ReportError> {
    let enc = |msg: String| ReportError::Encode {
        path: path.to_path_buf(),
        msg,
    };
    let mut fields = vec![Field::new("layer", DataType::Utf8, false)];
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(StringArray::from(rows.to_vec()))];
    let mut seen = std::collections::HashSet::from(["layer".to_string()]);
    for (j, c) in cols.iter().enumerate() {
        // Column names must be unique in Parquet; a B layer called "layer" gets a suffix.
        let mut name = c.clone();
        while !seen.insert(name.clone()) {
            name.push('_');
        }
        fields.push(Field::new(name, DataType::Float64, true));
        arrays.push(Arc::new(Float64Array::from(
            values.iter().map(|r| r[j]).collect::<Vec<_>>(),
        )));
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| enc(e.to_string()))?;
    let mut buf = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, batch.schema(), None)
        .map_err(|e| enc(e.to_string()))?;
    w.write(&batch).map_err(|e| enc(e.to_string()))?;
    w.close().map_err(|e| enc(e.to_string()))?;
    write_atomic(path, &buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_leaves_missing_values_empty() {
        let csv = matrix_csv(
            &["a,1".into(), "b".into()],
            &["x".into(), "y\"z".into()],
            &[vec![Some(0.5), None], vec![Some(1.0), Some(0.25)]],
        );
        assert_eq!(csv, "layer,x,\"y\"\"z\"\n\"a,1\",0.5,\nb,1,0.25\n");
    }

    #[test]
    fn parquet_matrix_reads_back() {
        use arrow_array::Array;
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let dir = std::env::temp_dir().join(format!("strata-report-pq-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("m.parquet");
        let vals = vec![vec![Some(0.5), None], vec![Some(1.0), Some(0.25)]];
        write_matrix_parquet(
            &p,
            &["r0".into(), "r1".into()],
            &["layer".into(), "c".into()],
            &vals,
        )
        .unwrap();
        let r = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&p).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = r.map(|b| b.unwrap()).collect();
        let b = &batches[0];
        assert_eq!(b.num_columns(), 3);
        assert_eq!(b.schema().field(1).name(), "layer_");
        let c1 = b.column(1).as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!((c1.value(0), c1.is_null(1)), (0.5, false));
        let c2 = b.column(2).as_any().downcast_ref::<Float64Array>().unwrap();
        assert!(c2.is_null(0));
        assert_eq!(c2.value(1), 0.25);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
