//! `mxrt._mxrt`, the native module of the `mxrt` Python package (PyO3, abi3): a thin layer over the library
//! API. `Model` wraps a [`Session`]; `convert`, `inspect` and `verify` wrap the converter, the format's
//! inspection and the runtime's verification. Inference and conversion run with the GIL released. Reports
//! cross as JSON text (the pure-Python layer, `mxrt/__init__.py`, parses them into dicts).

use std::path::PathBuf;
use std::sync::Arc;

use mxrt_converter::model_convert::{convert_model, ModelOptions, Shortcuts};
use mxrt_format::ReadOptions;
use mxrt_runtime::{
    BackendKind, Classification, MappedFile, RuntimeError, Session, SessionOptions,
};
use numpy::ndarray::Array2;
use numpy::{AllowTypeChange, IntoPyArray, PyArray2, PyArrayLike2};
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

pyo3::create_exception!(
    _mxrt,
    MxrtError,
    PyException,
    "An mxrt failure: the message says what and where."
);
pyo3::create_exception!(
    _mxrt,
    InputError,
    MxrtError,
    "The inputs do not fit the model (wrong task, NaN features, wrong widths)."
);
pyo3::create_exception!(
    _mxrt,
    ConvertError,
    MxrtError,
    "A checkpoint could not be converted."
);

fn runtime_error(e: RuntimeError) -> PyErr {
    match e {
        RuntimeError::Input(_) => InputError::new_err(e.to_string()),
        other => MxrtError::new_err(other.to_string()),
    }
}

/// An opened .mxrt model. Safe to share between threads; calls release the GIL while they compute.
#[pyclass(frozen, module = "mxrt._mxrt")]
struct Model {
    session: Arc<Session>,
    info: String,
    labels: Vec<String>,
    width: usize,
    features: Option<usize>,
}

/// Rows of `width` values as a 2-D float32 array.
fn matrix<'py>(
    py: Python<'py>,
    rows: Vec<Vec<f32>>,
    width: usize,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let n = rows.len();
    let flat: Vec<f32> = rows.concat();
    Array2::from_shape_vec((n, width), flat)
        .map(|a| a.into_pyarray(py))
        .map_err(|e| MxrtError::new_err(format!("output shape: {e}")))
}

impl Model {
    /// Labels and per-label values (probabilities, or a regression head's scores) of texts and pairs.
    fn classify_inputs<'py>(
        &self,
        py: Python<'py>,
        inputs: Vec<(String, Option<String>)>,
    ) -> PyResult<(Vec<String>, Bound<'py, PyArray2<f32>>)> {
        let session = Arc::clone(&self.session);
        let answers: Vec<Classification> = py
            .detach(move || {
                let refs: Vec<(&str, Option<&str>)> = inputs
                    .iter()
                    .map(|(a, b)| (a.as_str(), b.as_deref()))
                    .collect();
                session.classify_inputs(&refs)
            })
            .map_err(runtime_error)?;
        let labels = answers.iter().map(|a| a.label.clone()).collect();
        let values = answers
            .into_iter()
            .map(|a| match a.score {
                Some(score) => vec![score],
                None => a.probabilities,
            })
            .collect();
        Ok((labels, matrix(py, values, self.width)?))
    }
}

#[pymethods]
impl Model {
    #[new]
    #[pyo3(signature = (path, backend = "cpu", threads = None, max_batch = 32, max_length = None, verify_checksums = true))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        backend: &str,
        threads: Option<usize>,
        max_batch: usize,
        max_length: Option<usize>,
        verify_checksums: bool,
    ) -> PyResult<Model> {
        let backend: BackendKind = backend
            .parse()
            .map_err(|e: String| pyo3::exceptions::PyValueError::new_err(e))?;
        let options = SessionOptions {
            backend,
            threads,
            max_batch,
            max_length,
            verify_checksums,
            ..SessionOptions::default()
        };
        let session = py
            .detach(move || Session::open(&path, options))
            .map_err(runtime_error)?;
        let info = session.describe();
        Ok(Model {
            labels: info.labels.clone(),
            width: info.output_width,
            features: info.input_features,
            info: info.to_json().to_string(),
            session: Arc::new(session),
        })
    }

    /// The description as JSON text (`Model.info` parses it).
    fn info_json(&self) -> String {
        self.info.clone()
    }

    /// The model's labels (classifiers, MLPs that name their classes).
    #[getter]
    fn labels(&self) -> Vec<String> {
        self.labels.clone()
    }

    /// Labels and probabilities (n × labels, float32) for texts; a regression head gives its scores (n × 1).
    fn classify<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
    ) -> PyResult<(Vec<String>, Bound<'py, PyArray2<f32>>)> {
        self.classify_inputs(py, texts.into_iter().map(|t| (t, None)).collect())
    }

    /// As `classify`, for sentence pairs.
    fn classify_pairs<'py>(
        &self,
        py: Python<'py>,
        pairs: Vec<(String, String)>,
    ) -> PyResult<(Vec<String>, Bound<'py, PyArray2<f32>>)> {
        self.classify_inputs(py, pairs.into_iter().map(|(a, b)| (a, Some(b))).collect())
    }

    /// The head's raw outputs (logits, scores or embeddings) for texts, or pairs when `pairs` is given.
    #[pyo3(signature = (texts, pairs = None))]
    fn logits<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
        pairs: Option<Vec<String>>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        if let Some(p) = &pairs {
            if p.len() != texts.len() {
                return Err(InputError::new_err(format!(
                    "{} pairs for {} texts: give one second text per text",
                    p.len(),
                    texts.len()
                )));
            }
        }
        let session = Arc::clone(&self.session);
        let rows = py
            .detach(move || {
                let refs: Vec<(&str, Option<&str>)> = texts
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (t.as_str(), pairs.as_ref().map(|p| p[i].as_str())))
                    .collect();
                session.outputs(&refs)
            })
            .map_err(runtime_error)?;
        matrix(py, rows, self.width)
    }

    /// Sentence embeddings (n × dimensions, float32).
    fn embed<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let session = Arc::clone(&self.session);
        let rows = py
            .detach(move || {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                session.embed(&refs)
            })
            .map_err(runtime_error)?;
        matrix(py, rows, self.width)
    }

    /// An MLP on feature rows (any 2-D array-like of numbers, rows × features): rows × outputs, float32.
    fn run<'py>(
        &self,
        py: Python<'py>,
        x: PyArrayLike2<'py, f32, AllowTypeChange>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let Some(features) = self.features else {
            return Err(runtime_error(mxrt_runtime::InputError::NotFeatures.into()));
        };
        let view = x.as_array();
        let (rows, cols) = view.dim();
        if cols != features {
            return Err(InputError::new_err(format!(
                "x has {cols} columns; this model takes {features} features per row"
            )));
        }
        let values: Vec<f32> = view.iter().copied().collect();
        let session = Arc::clone(&self.session);
        let y = py
            .detach(move || session.run(&values, rows))
            .map_err(runtime_error)?;
        let out = Array2::from_shape_vec((rows, self.width), y)
            .map_err(|e| MxrtError::new_err(format!("output shape: {e}")))?;
        Ok(out.into_pyarray(py))
    }
}

/// Converts a checkpoint (a directory, or config.json and a weight file) into `out`; returns the fidelity
/// report as JSON text.
#[pyfunction]
#[pyo3(signature = (inputs, out, recipe = None, weights = None, activations = None, rounding = None, prune = None, sparsity = None, scope = "local", seed = 0, tokenizer = true))]
#[allow(clippy::too_many_arguments)]
fn convert(
    py: Python<'_>,
    inputs: Vec<PathBuf>,
    out: PathBuf,
    recipe: Option<PathBuf>,
    weights: Option<String>,
    activations: Option<String>,
    rounding: Option<String>,
    prune: Option<String>,
    sparsity: Option<f64>,
    scope: &str,
    seed: u64,
    tokenizer: bool,
) -> PyResult<String> {
    let prune = match (prune, sparsity) {
        (Some(method), Some(s)) => Some((method, s, scope.to_string(), seed)),
        (None, None) => None,
        _ => {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "prune and sparsity go together (e.g. prune=\"l1\", sparsity=0.5)",
            ))
        }
    };
    let shortcuts = Shortcuts {
        weights,
        activations,
        rounding,
        prune,
    };
    py.detach(move || {
        let options = ModelOptions {
            embed_tokenizer: tokenizer,
            ..ModelOptions::from_recipe(recipe.as_deref(), &shortcuts)?
        };
        let report = convert_model(
            &inputs,
            &out,
            &options,
            &mut |_, _, _| {},
            &mxrt_runtime::check_image,
        )?;
        serde_json::to_string(&report)
            .map_err(|e| mxrt_converter::ConvertError::Options(format!("the report as JSON: {e}")))
    })
    .map_err(|e| ConvertError::new_err(e.to_string()))
}

/// A file's tensors, encodings, sizes and metadata as JSON text (structure validated, checksums not).
#[pyfunction]
fn inspect(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    py.detach(move || {
        let mapped = MappedFile::open(&path)?;
        let file = mapped.validate(ReadOptions {
            verify_checksums: false,
        })?;
        let inspection = mxrt_format::inspect::inspect(&file, &path.display().to_string());
        Ok::<_, RuntimeError>(serde_json::to_string(&inspection).unwrap_or_default())
    })
    .map_err(runtime_error)
}

/// Structure, every checksum, and for a model the checks at open: JSON text with `ok` and the details or
/// the error.
#[pyfunction]
fn verify(py: Python<'_>, path: PathBuf) -> String {
    py.detach(move || {
        let file = path.display().to_string();
        match mxrt_runtime::verify(&path) {
            Ok(v) => serde_json::json!({"file": file, "ok": true, "tensors": v.tensors, "bytes": v.bytes, "model": v.model}),
            Err(e) => serde_json::json!({"file": file, "ok": false, "error": e.to_string()}),
        }
        .to_string()
    })
}

#[pymodule]
fn _mxrt(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(convert, m)?)?;
    m.add_function(wrap_pyfunction!(inspect, m)?)?;
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    m.add("MxrtError", m.py().get_type::<MxrtError>())?;
    m.add("InputError", m.py().get_type::<InputError>())?;
    m.add("ConvertError", m.py().get_type::<ConvertError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
