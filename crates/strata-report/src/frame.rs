//! Result tables (one row per run, layer pair, epoch...) built as polars DataFrames and written
//! as CSV and Parquet, the two files pandas and polars users load without thinking.
//!
//! Callers describe a table as plain typed columns, so they need no polars types to produce one;
//! [`Table::to_dataframe`] hands the DataFrame over for joins and group-bys before writing.

use crate::{write_atomic, ReportError};
use polars::prelude::{
    Column as PlColumn, CsvWriter, DataFrame, ParquetWriter, PlSmallStr, SerWriter,
};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// One named, typed column. `None` is a missing value: an empty CSV field, a Parquet null.
pub enum Column {
    /// Text (model names, layer names, precisions).
    Str(String, Vec<String>),
    /// Measurements; `None` where a value is undefined (an n/a CKA, a run that did not finish).
    F64(String, Vec<Option<f64>>),
    /// Counts and indices (epochs, seeds, widths).
    I64(String, Vec<Option<i64>>),
}

impl Column {
    fn name(&self) -> &str {
        match self {
            Column::Str(n, _) | Column::F64(n, _) | Column::I64(n, _) => n,
        }
    }

    fn len(&self) -> usize {
        match self {
            Column::Str(_, v) => v.len(),
            Column::F64(_, v) => v.len(),
            Column::I64(_, v) => v.len(),
        }
    }

    fn to_polars(&self) -> PlColumn {
        let name = PlSmallStr::from(self.name());
        match self {
            Column::Str(_, v) => PlColumn::new(name, v.as_slice()),
            Column::F64(_, v) => PlColumn::new(name, v.as_slice()),
            Column::I64(_, v) => PlColumn::new(name, v.as_slice()),
        }
    }
}

/// A result table: columns in order, all of the same length, with unique names.
pub struct Table {
    /// In output order; all the same length, names unique (checked when written).
    pub columns: Vec<Column>,
}

impl Table {
    /// Check the shape, then build the DataFrame. Errors are messages, so each caller can name
    /// what it was writing.
    fn frame(&self) -> Result<DataFrame, String> {
        if self.columns.is_empty() {
            return Err("a table needs at least one column".into());
        }
        let mut seen = HashSet::new();
        for c in &self.columns {
            if !seen.insert(c.name()) {
                return Err(format!("two columns are named '{}'", c.name()));
            }
        }
        let height = self.columns[0].len();
        if let Some(c) = self.columns.iter().find(|c| c.len() != height) {
            return Err(format!(
                "columns differ in length: '{}' has {} rows, '{}' has {height}",
                c.name(),
                c.len(),
                self.columns[0].name()
            ));
        }
        let cols = self.columns.iter().map(Column::to_polars).collect();
        DataFrame::new(height, cols).map_err(|e| e.to_string())
    }

    /// The table as a polars DataFrame (Str as String, F64 as Float64, I64 as Int64, `None` as
    /// null). Columns of different lengths or with the same name are an
    /// [`Encode`](ReportError::Encode) error, not a panic.
    pub fn to_dataframe(&self) -> Result<DataFrame, ReportError> {
        self.frame().map_err(|msg| ReportError::Encode {
            path: PathBuf::from("table"),
            msg,
        })
    }
}

/// Write `t` as `dir/stem.csv` (header row, missing values as empty fields) and
/// `dir/stem.parquet` (typed, nulls kept, zstd), each atomically: encoded in memory, written to a
/// temporary name in `dir` and renamed, the temporary removed on error. Returns the two paths,
/// CSV first.
pub fn write_table(t: &Table, dir: &Path, stem: &str) -> Result<Vec<PathBuf>, ReportError> {
    let enc = |path: &Path, msg: String| ReportError::Encode {
        path: path.to_path_buf(),
        msg,
    };
    if stem.is_empty() {
        return Err(enc(dir, "empty file name for a table".into()));
    }
    let mut df = t.frame().map_err(|msg| enc(&dir.join(stem), msg))?;
    let csv = dir.join(format!("{stem}.csv"));
    let parquet = dir.join(format!("{stem}.parquet"));

    // Result tables are small: one thread each, leaving the cores to the caller's work.
    let mut buf = Vec::new();
    CsvWriter::new(&mut buf)
        .include_header(true)
        .n_threads(1)
        .finish(&mut df)
        .map_err(|e| enc(&csv, e.to_string()))?;
    write_atomic(&csv, &buf)?;

    let mut buf = Vec::new();
    ParquetWriter::new(&mut buf)
        .set_parallel(false)
        .finish(&mut df)
        .map_err(|e| enc(&parquet, e.to_string()))?;
    write_atomic(&parquet, &buf)?;
    Ok(vec![csv, parquet])
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::{DataType, ParquetReader, SerReader};

    fn tmp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("strata-frame-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn sample() -> Table {
        Table {
            columns: vec![
                Column::Str(
                    "model".into(),
                    vec!["mlp, float".into(), "mlp \"bin\"".into(), "cnn".into()],
                ),
                Column::I64("epoch".into(), vec![Some(1), None, Some(-3)]),
                Column::F64("acc".into(), vec![Some(0.25), Some(1e-300), None]),
            ],
        }
    }

    #[test]
    fn csv_has_header_quoting_and_empty_nulls() {
        let dir = tmp_dir("csv");
        let paths = write_table(&sample(), &dir, "accuracy").unwrap();
        assert_eq!(
            paths,
            vec![dir.join("accuracy.csv"), dir.join("accuracy.parquet")]
        );
        let text = std::fs::read_to_string(&paths[0]).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "model,epoch,acc");
        assert_eq!(lines[1], "\"mlp, float\",1,0.25");
        assert!(
            lines[2].starts_with("\"mlp \"\"bin\"\"\",,"),
            "{}",
            lines[2]
        );
        // The tiny value survives the text round trip exactly.
        let v: f64 = lines[2].rsplit(',').next().unwrap().parse().unwrap();
        assert_eq!(v, 1e-300);
        assert_eq!(lines[3], "cnn,-3,");
        assert_eq!(lines.len(), 4);
        // Nothing but the two files: no temporaries left.
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["accuracy.csv", "accuracy.parquet"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parquet_reads_back_with_types_and_nulls() {
        let dir = tmp_dir("parquet");
        let paths = write_table(&sample(), &dir, "t").unwrap();
        let df = ParquetReader::new(std::fs::File::open(&paths[1]).unwrap())
            .finish()
            .unwrap();
        assert_eq!(df.shape(), (3, 3));
        let dtypes: Vec<DataType> = df.columns().iter().map(|c| c.dtype().clone()).collect();
        assert_eq!(
            dtypes,
            [DataType::String, DataType::Int64, DataType::Float64]
        );
        let model: Vec<Option<&str>> = df.column("model").unwrap().str().unwrap().iter().collect();
        assert_eq!(
            model,
            [Some("mlp, float"), Some("mlp \"bin\""), Some("cnn")]
        );
        let epoch: Vec<Option<i64>> = df.column("epoch").unwrap().i64().unwrap().iter().collect();
        assert_eq!(epoch, [Some(1), None, Some(-3)]);
        let acc: Vec<Option<f64>> = df.column("acc").unwrap().f64().unwrap().iter().collect();
        assert_eq!(acc, [Some(0.25), Some(1e-300), None]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parquet_reads_back_with_the_arrow_reader_too() {
        use arrow_array::{Array, Float64Array};
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let dir = tmp_dir("arrow");
        let paths = write_table(&sample(), &dir, "t").unwrap();
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&paths[1]).unwrap())
                .unwrap()
                .build()
                .unwrap();
        let batch = reader.map(|b| b.unwrap()).next().unwrap();
        let acc = batch
            .column(2)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert_eq!(
            (acc.value(0), acc.value(1), acc.is_null(2)),
            (0.25, 1e-300, true)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_shapes_are_errors_and_write_nothing() {
        let dir = tmp_dir("bad");
        let uneven = Table {
            columns: vec![
                Column::Str("a".into(), vec!["x".into()]),
                Column::F64("b".into(), vec![Some(1.0), None]),
            ],
        };
        let twice = Table {
            columns: vec![
                Column::I64("a".into(), vec![Some(1)]),
                Column::F64("a".into(), vec![Some(1.0)]),
            ],
        };
        for t in [&uneven, &twice, &Table { columns: vec![] }] {
            assert!(matches!(t.to_dataframe(), Err(ReportError::Encode { .. })));
            assert!(matches!(
                write_table(t, &dir, "t"),
                Err(ReportError::Encode { .. })
            ));
        }
        let msg = uneven.to_dataframe().unwrap_err().to_string();
        assert!(msg.contains("'b' has 2 rows"), "{msg}");
        assert!(std::fs::read_dir(&dir).unwrap().next().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unwritable_dir_is_an_error() {
        let dir = tmp_dir("unwritable");
        assert!(write_table(&sample(), &dir.join("missing"), "t").is_err());
        assert!(std::fs::read_dir(&dir).unwrap().next().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn empty_table_keeps_its_header() {
        let dir = tmp_dir("empty");
        let t = Table {
            columns: vec![
                Column::F64("x".into(), vec![]),
                Column::Str("y".into(), vec![]),
            ],
        };
        let paths = write_table(&t, &dir, "e").unwrap();
        assert_eq!(
            std::fs::read_to_string(&paths[0]).unwrap().trim_end(),
            "x,y"
        );
        let df = ParquetReader::new(std::fs::File::open(&paths[1]).unwrap())
            .finish()
            .unwrap();
        assert_eq!(df.shape(), (0, 2));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
