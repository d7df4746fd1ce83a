//! A restricted unpickler: enough of Python's pickle machine (protocols 2 to 5) to read the `data.pkl` of a
//! PyTorch checkpoint, and nothing that runs code. Pickle's danger is that `GLOBAL` names any importable
//! callable and `REDUCE` calls it; here every global must be on [`allowed`] (the few classes and functions
//! a tensor state dict is built from, and the plain containers Lightning writes next to it), no call is
//! ever made, and each allowed call is *interpreted* into a [`Value`]. Any other global is an error naming
//! it (`os.system`, `builtins.eval`, a model class saved with `torch.save(model)`, …).
//!
//! Why not a crate: `serde-pickle` (the maintained pickle crate) has no persistent IDs, which is how torch
//! refers to tensor storages, and resolves only its own short list of globals; candle's reader comes with
//! all of candle. This module is the subset torch needs, with every size checked.

use std::collections::HashMap;

/// A tensor storage as the checkpoint names it: `('storage', torch.FloatStorage, key, location, numel)`.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageRef {
    pub dtype: StorageDtype,
    /// The archive entry `data/<key>` that holds the bytes.
    pub key: String,
}

/// A tensor: a view (offset, shape, strides, all in elements) into a storage.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef {
    pub storage: StorageRef,
    pub offset: u64,
    pub shape: Vec<u64>,
    pub strides: Vec<u64>,
}

/// Element types of torch storages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageDtype {
    F32,
    F16,
    Bf16,
    F64,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl StorageDtype {
    pub fn size(self) -> u64 {
        match self {
            StorageDtype::F64 | StorageDtype::I64 => 8,
            StorageDtype::F32 | StorageDtype::I32 => 4,
            StorageDtype::F16 | StorageDtype::Bf16 | StorageDtype::I16 => 2,
            StorageDtype::I8 | StorageDtype::U8 | StorageDtype::Bool => 1,
        }
    }

    /// The storage class torch pickles for this element type (`torch.FloatStorage`, …).
    fn from_class(name: &str) -> Option<StorageDtype> {
        Some(match name {
            "FloatStorage" => StorageDtype::F32,
            "HalfStorage" => StorageDtype::F16,
            "BFloat16Storage" => StorageDtype::Bf16,
            "DoubleStorage" => StorageDtype::F64,
            "LongStorage" => StorageDtype::I64,
            "IntStorage" => StorageDtype::I32,
            "ShortStorage" => StorageDtype::I16,
            "CharStorage" => StorageDtype::I8,
            "ByteStorage" => StorageDtype::U8,
            "BoolStorage" => StorageDtype::Bool,
            _ => return None,
        })
    }
}

/// What the unpickler builds.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    /// Insertion order kept (a state dict's order is the module's).
    Dict(Vec<(Value, Value)>),
    /// An allowed global, not yet called.
    Global(Global),
    Storage(StorageRef),
    Tensor(TensorRef),
    /// An allowed object whose contents the converter does not need (`torch.device('cpu')`, a Lightning
    /// hyper-parameter namespace): its class, for messages.
    Opaque(String),
}

/// The globals a checkpoint may name.
#[derive(Clone, Debug, PartialEq)]
pub enum Global {
    OrderedDict,
    RebuildTensor,
    RebuildParameter,
    StorageClass(StorageDtype),
    /// `torch.Size`: a tuple.
    Size,
    /// A class built into an opaque object or a plain dict (`torch.device`, `argparse.Namespace`,
    /// Lightning's `AttributeDict`); `true` when its state is a dict worth keeping.
    Container(String, bool),
    /// `torch.float32` and friends (tensor metadata in newer files): kept as a name.
    Dtype(String),
}

/// The globals on the allow list; every other `module.name` is refused.
pub fn allowed(module: &str, name: &str) -> Option<Global> {
    Some(match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => Global::RebuildTensor,
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
            Global::RebuildParameter
        }
        ("torch", "Size") => Global::Size,
        ("torch", "device") => Global::Container("torch.device".into(), false),
        ("torch", class) if StorageDtype::from_class(class).is_some() => {
            Global::StorageClass(StorageDtype::from_class(class)?)
        }
        ("torch", dtype)
            if matches!(
                dtype,
                "float32"
                    | "float16"
                    | "bfloat16"
                    | "float64"
                    | "int64"
                    | "int32"
                    | "int16"
                    | "int8"
                    | "uint8"
                    | "bool"
            ) =>
        {
            Global::Dtype(format!("torch.{dtype}"))
        }
        ("argparse", "Namespace")
        | ("pytorch_lightning.utilities.parsing", "AttributeDict")
        | ("lightning.pytorch.utilities.parsing", "AttributeDict")
        | ("lightning_fabric.utilities.data", "AttributeDict")
        | ("lightning.fabric.utilities.data", "AttributeDict") => {
            Global::Container(format!("{module}.{name}"), true)
        }
        _ => return None,
    })
}

/// Why a pickle could not be read.
#[derive(Debug, PartialEq)]
pub enum PickleError {
    /// A global outside the allow list: `module.name`.
    Forbidden(String),
    /// Anything else, in words, with the byte offset of the opcode.
    Malformed { offset: usize, reason: String },
}

impl std::fmt::Display for PickleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PickleError::Forbidden(g) => write!(
                f,
                "the pickle names {g}, which a tensor checkpoint does not need; mxrt never runs pickled \
                 code and reads only state dicts (save one with torch.save(model.state_dict(), path))"
            ),
            PickleError::Malformed { offset, reason } => {
                write!(f, "malformed pickle at byte {offset}: {reason}")
            }
        }
    }
}

/// Values a pickle may create, copies through the memo included: far above any state dict (a few values
/// per tensor; a Lightning checkpoint with optimizer state: thousands), far below what would exhaust memory
/// (a "billion laughs" pickle that duplicates a list into itself stops here).
const MAX_VALUES: usize = 10_000_000;
/// Nesting depth of the values built (the converter walks them recursively).
const MAX_DEPTH: usize = 512;

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    op_at: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    values: usize,
}

/// Runs `data` (a whole pickle, up to its `STOP`) and returns the value it leaves.
pub fn load(data: &[u8]) -> Result<Value, PickleError> {
    let mut m = Machine {
        data,
        pos: 0,
        op_at: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        values: 0,
    };
    m.run()
}

impl<'a> Machine<'a> {
    fn bad<T>(&self, reason: impl Into<String>) -> Result<T, PickleError> {
        Err(PickleError::Malformed {
            offset: self.op_at,
            reason: reason.into(),
        })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        match self.pos.checked_add(n).filter(|&e| e <= self.data.len()) {
            Some(end) => {
                let s = &self.data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => self.bad(format!(
                "needs {n} more bytes, the pickle ends (truncated?)"
            )),
        }
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, PickleError> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().unwrap_or_default(),
        ))
    }
    fn u32(&mut self) -> Result<u32, PickleError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or_default(),
        ))
    }
    fn u64(&mut self) -> Result<u64, PickleError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().unwrap_or_default(),
        ))
    }

    fn len64(&mut self, n: u64) -> Result<usize, PickleError> {
        usize::try_from(n).or_else(|_| self.bad("a length beyond this machine's address space"))
    }

    fn line(&mut self) -> Result<&'a str, PickleError> {
        let rest = &self.data[self.pos..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return self.bad("a text argument without its newline");
        };
        let s =
            std::str::from_utf8(&rest[..end]).or_else(|_| self.bad("text that is not UTF-8"))?;
        self.pos += end + 1;
        Ok(s)
    }

    fn text(&mut self, n: usize) -> Result<String, PickleError> {
        let b = self.take(n)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => self.bad("a string that is not UTF-8"),
        }
    }

    fn push(&mut self, v: Value) -> Result<(), PickleError> {
        self.count(1)?;
        self.stack.push(v);
        Ok(())
    }

    fn count(&mut self, n: usize) -> Result<(), PickleError> {
        self.values = self.values.saturating_add(n);
        if self.values > MAX_VALUES {
            return self.bad(format!(
                "builds more than {MAX_VALUES} values (a pickle that multiplies itself?)"
            ));
        }
        Ok(())
    }

    fn pop(&mut self) -> Result<Value, PickleError> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return self.bad("pops past a MARK");
        }
        match self.stack.pop() {
            Some(v) => Ok(v),
            None => self.bad("pops an empty stack"),
        }
    }

    fn top(&mut self) -> Result<&mut Value, PickleError> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) || self.stack.is_empty() {
            return self.bad("needs a value on the stack");
        }
        let last = self.stack.len() - 1;
        Ok(&mut self.stack[last])
    }

    /// The values above the last MARK, and the MARK removed.
    fn pop_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        match self.marks.pop() {
            Some(m) if m <= self.stack.len() => Ok(self.stack.split_off(m)),
            _ => self.bad("needs a MARK"),
        }
    }

    fn memo_get(&mut self, key: u32) -> Result<(), PickleError> {
        let Some(v) = self.memo.get(&key) else {
            return self.bad(format!("memo entry {key} was never stored"));
        };
        // Counted before it is copied, so a pickle that doubles itself stops before the copy is made.
        let n = size_of_value(v);
        self.count(n)?;
        let v = self.memo[&key].clone();
        self.stack.push(v);
        Ok(())
    }

    /// The memo keeps a copy, not a shared reference: a container changed after it was memoized and then
    /// fetched again would come back as it was. Torch memoizes storages and finished tensors, which do not
    /// change; what it shares (tied weights) comes back right.
    fn memo_put(&mut self, key: u32) -> Result<(), PickleError> {
        let n = size_of_value(self.top()?);
        self.count(n)?;
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }

    fn run(&mut self) -> Result<Value, PickleError> {
        loop {
            self.op_at = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if proto > 5 {
                        return self.bad(format!("protocol {proto} (known: up to 5)"));
                    }
                }
                0x95 => {
                    self.u64()?; // FRAME: a length hint only
                }
                b'.' => {
                    let v = self.pop()?;
                    return Ok(v);
                }
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v)?;
                }
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                b'J' => {
                    let v = self.u32()? as i32;
                    self.push(Value::Int(i64::from(v)))?
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(i64::from(v)))?
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(Value::Int(i64::from(v)))?
                }
                0x8a => {
                    let n = usize::from(self.u8()?);
                    let bytes = self.take(n)?;
                    let v = long_le(bytes).map(Value::Int);
                    match v {
                        Some(v) => self.push(v)?,
                        None => return self.bad("an integer wider than 64 bits"),
                    }
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.take(8)?.try_into().unwrap_or_default());
                    self.push(Value::Float(v))?
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let s = self.text(n)?;
                    self.push(Value::Str(s))?
                }
                0x8c => {
                    let n = usize::from(self.u8()?);
                    let s = self.text(n)?;
                    self.push(Value::Str(s))?
                }
                0x8d => {
                    let n = self.u64()?;
                    let n = self.len64(n)?;
                    let s = self.text(n)?;
                    self.push(Value::Str(s))?
                }
                b'U' => {
                    let n = usize::from(self.u8()?);
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b))?
                }
                b'T' => {
                    let n = self.u32()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b))?
                }
                b'C' => {
                    let n = usize::from(self.u8()?);
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b))?
                }
                b'B' => {
                    let n = self.u32()? as usize;
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b))?
                }
                0x8e => {
                    let n = self.u64()?;
                    let n = self.len64(n)?;
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b))?
                }
                b']' => self.push(Value::List(Vec::new()))?,
                b')' => self.push(Value::Tuple(Vec::new()))?,
                b'}' => self.push(Value::Dict(Vec::new()))?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.nest(&items)?;
                    self.push(Value::Tuple(items))?
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.nest(&items)?;
                    self.push(Value::Tuple(items))?
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.nest(&items)?;
                    self.push(Value::List(items))?
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    self.nest(&items)?;
                    let pairs = self.pairs(items)?;
                    self.push(Value::Dict(pairs))?
                }
                b'a' => {
                    let v = self.pop()?;
                    self.nest(std::slice::from_ref(&v))?;
                    match self.top()? {
                        Value::List(l) => l.push(v),
                        _ => return self.bad("APPEND to something that is not a list"),
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.nest(&items)?;
                    match self.top()? {
                        Value::List(l) => l.extend(items),
                        _ => return self.bad("APPENDS to something that is not a list"),
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.nest(std::slice::from_ref(&v))?;
                    self.nest(std::slice::from_ref(&k))?;
                    self.set_items(vec![(k, v)])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.nest(&items)?;
                    let pairs = self.pairs(items)?;
                    self.set_items(pairs)?;
                }
                b'q' => {
                    let k = u32::from(self.u8()?);
                    self.memo_put(k)?
                }
                b'r' => {
                    let k = self.u32()?;
                    self.memo_put(k)?
                }
                b'p' => {
                    let k = self.line()?;
                    let k = k
                        .parse()
                        .or_else(|_| self.bad("PUT with a key that is not a number"))?;
                    self.memo_put(k)?
                }
                0x94 => {
                    let k =
                        u32::try_from(self.memo.len()).or_else(|_| self.bad("memo too large"))?;
                    self.memo_put(k)?
                }
                b'h' => {
                    let k = u32::from(self.u8()?);
                    self.memo_get(k)?
                }
                b'j' => {
                    let k = self.u32()?;
                    self.memo_get(k)?
                }
                b'g' => {
                    let k = self.line()?;
                    let k = k
                        .parse()
                        .or_else(|_| self.bad("GET with a key that is not a number"))?;
                    self.memo_get(k)?
                }
                b'c' => {
                    let module = self.line()?.to_string();
                    let name = self.line()?.to_string();
                    self.global(&module, &name)?
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.global(&m, &n)?,
                        _ => return self.bad("STACK_GLOBAL without two strings"),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let storage = self.persistent(pid)?;
                    self.push(storage)?
                }
                b'R' => {
                    let args = self.pop()?;
                    self.nest(std::slice::from_ref(&args))?;
                    let callable = self.pop()?;
                    let v = self.call(callable, args)?;
                    self.push(v)?
                }
                0x81 => {
                    let args = self.pop()?;
                    self.nest(std::slice::from_ref(&args))?;
                    let class = self.pop()?;
                    let v = self.call(class, args)?;
                    self.push(v)?
                }
                b'b' => {
                    let state = self.pop()?;
                    self.nest(std::slice::from_ref(&state))?;
                    self.build(state)?
                }
                0x8f => self.push(Value::List(Vec::new()))?, // EMPTY_SET: kept as a list
                0x90 => {
                    let items = self.pop_mark()?;
                    self.nest(&items)?;
                    match self.top()? {
                        Value::List(l) => l.extend(items),
                        _ => return self.bad("ADDITEMS to something that is not a set"),
                    }
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.nest(&items)?;
                    self.push(Value::List(items))?
                }
                other => {
                    return self.bad(format!(
                        "opcode 0x{other:02x} is not one a tensor checkpoint uses"
                    ))
                }
            }
            if self.stack.len() > MAX_VALUES {
                return self.bad("stack too deep");
            }
        }
    }

    /// Refuses `items` as the contents of a container when that would nest deeper than [`MAX_DEPTH`].
    fn nest(&self, items: &[Value]) -> Result<(), PickleError> {
        if items.iter().any(|v| depth(v) >= MAX_DEPTH) {
            return self.bad(format!("values nested deeper than {MAX_DEPTH} levels"));
        }
        Ok(())
    }

    fn pairs(&self, items: Vec<Value>) -> Result<Vec<(Value, Value)>, PickleError> {
        if !items.len().is_multiple_of(2) {
            return self.bad("a dict built from an odd number of items");
        }
        let mut it = items.into_iter();
        let mut out = Vec::new();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            out.push((k, v));
        }
        Ok(out)
    }

    fn set_items(&mut self, pairs: Vec<(Value, Value)>) -> Result<(), PickleError> {
        match self.top()? {
            Value::Dict(d) => {
                for (k, v) in pairs {
                    // A key set twice keeps its first place and its last value, as a Python dict does.
                    match d.iter_mut().find(|(key, _)| *key == k) {
                        Some(slot) => slot.1 = v,
                        None => d.push((k, v)),
                    }
                }
                Ok(())
            }
            Value::Opaque(_) => Ok(()),
            _ => self.bad("SETITEM on something that is not a dict"),
        }
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), PickleError> {
        match allowed(module, name) {
            Some(g) => self.push(Value::Global(g)),
            None => Err(PickleError::Forbidden(format!("{module}.{name}"))),
        }
    }

    /// `('storage', <storage class>, key, location, numel)`: the storage itself (its bytes are the archive's).
    fn persistent(&self, pid: Value) -> Result<Value, PickleError> {
        let Value::Tuple(items) = pid else {
            return self.bad("a persistent id that is not a tuple");
        };
        match items.as_slice() {
            [Value::Str(kind), Value::Global(Global::StorageClass(dtype)), key, _location, _numel]
                if kind == "storage" =>
            {
                let key = match key {
                    Value::Str(s) => s.clone(),
                    Value::Int(i) => i.to_string(),
                    _ => return self.bad("a storage key that is neither text nor a number"),
                };
                Ok(Value::Storage(StorageRef { dtype: *dtype, key }))
            }
            _ => self.bad(
                "a persistent id that is not ('storage', <torch storage class>, key, location, numel)",
            ),
        }
    }

    fn call(&self, callable: Value, args: Value) -> Result<Value, PickleError> {
        let Value::Global(g) = callable else {
            return self.bad("REDUCE of something that is not an allowed global");
        };
        let Value::Tuple(args) = args else {
            return self.bad("REDUCE with arguments that are not a tuple");
        };
        match g {
            Global::OrderedDict => match args.as_slice() {
                [] => Ok(Value::Dict(Vec::new())),
                [Value::List(items)] => {
                    let mut d = Vec::new();
                    for item in items {
                        match item {
                            Value::Tuple(kv) if kv.len() == 2 => {
                                d.push((kv[0].clone(), kv[1].clone()))
                            }
                            _ => return self.bad("OrderedDict of items that are not pairs"),
                        }
                    }
                    Ok(Value::Dict(d))
                }
                _ => self.bad("OrderedDict with unexpected arguments"),
            },
            Global::RebuildTensor => match args.as_slice() {
                [Value::Storage(storage), offset, Value::Tuple(shape), Value::Tuple(strides), ..] =>
                {
                    let ints = |v: &[Value], what: &str| -> Result<Vec<u64>, PickleError> {
                        v.iter()
                            .map(|d| match d {
                                Value::Int(i) if *i >= 0 => Ok(*i as u64),
                                _ => self.bad(format!(
                                    "a tensor {what} that is not a non-negative integer"
                                )),
                            })
                            .collect()
                    };
                    let offset = match offset {
                        Value::Int(i) if *i >= 0 => *i as u64,
                        _ => {
                            return self
                                .bad("a tensor storage offset that is not a non-negative integer")
                        }
                    };
                    let (shape, strides) = (ints(shape, "size")?, ints(strides, "stride")?);
                    if shape.len() != strides.len() {
                        return self.bad(format!(
                            "a tensor with {} sizes but {} strides",
                            shape.len(),
                            strides.len()
                        ));
                    }
                    Ok(Value::Tensor(TensorRef {
                        storage: storage.clone(),
                        offset,
                        shape,
                        strides,
                    }))
                }
                _ => self.bad("_rebuild_tensor without (storage, offset, size, stride, ...)"),
            },
            Global::RebuildParameter => match args.first() {
                Some(t @ Value::Tensor(_)) => Ok(t.clone()),
                _ => self.bad("_rebuild_parameter without a tensor"),
            },
            Global::Size => match args.as_slice() {
                [Value::Tuple(dims)] => Ok(Value::Tuple(dims.clone())),
                _ => self.bad("torch.Size without a tuple"),
            },
            // Dict subclasses (Lightning's AttributeDict) get their items from SETITEMS next.
            Global::Container(_, true) => Ok(Value::Dict(Vec::new())),
            Global::Container(class, false) => Ok(Value::Opaque(class)),
            Global::StorageClass(_) | Global::Dtype(_) => {
                self.bad("a storage class or dtype called as a function")
            }
        }
    }

    /// `BUILD`: an object's state, i.e. its attributes (an `OrderedDict`'s `_metadata`, a dict subclass's
    /// `__dict__`): not part of its items, and nothing the converter reads; dropped.
    fn build(&mut self, _state: Value) -> Result<(), PickleError> {
        match self.top()? {
            Value::Opaque(_) | Value::Dict(_) => Ok(()),
            _ => self.bad("BUILD on an object that is not an allowed class"),
        }
    }
}

/// A little-endian two's complement integer of up to 8 bytes (`LONG1`).
fn long_le(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() {
        return Some(0);
    }
    if bytes.len() > 8 {
        return None;
    }
    let fill = if bytes[bytes.len() - 1] & 0x80 != 0 {
        0xff
    } else {
        0
    };
    let mut b = [fill; 8];
    b[..bytes.len()].copy_from_slice(bytes);
    Some(i64::from_le_bytes(b))
}

/// Number of values in `v` (itself included), for the expansion budget.
fn size_of_value(v: &Value) -> usize {
    match v {
        Value::List(items) | Value::Tuple(items) => {
            1 + items
                .iter()
                .map(size_of_value)
                .fold(0, usize::saturating_add)
        }
        Value::Dict(pairs) => pairs
            .iter()
            .map(|(k, v)| size_of_value(k).saturating_add(size_of_value(v)))
            .fold(1, usize::saturating_add),
        _ => 1,
    }
}

/// Nesting depth of `v` (1 for a scalar). Every container is checked against [`MAX_DEPTH`] as it is
/// filled, so this recursion (and every clone and drop of a value) stays that shallow.
fn depth(v: &Value) -> usize {
    match v {
        Value::List(items) | Value::Tuple(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Dict(pairs) => {
            1 + pairs
                .iter()
                .map(|(k, v)| depth(k).max(depth(v)))
                .max()
                .unwrap_or(0)
        }
        _ => 1,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A pickle written opcode by opcode (protocol 2), for tests here and in the archive reader's.
    #[derive(Default)]
    pub struct Writer(pub Vec<u8>);

    impl Writer {
        pub fn new() -> Writer {
            Writer(vec![0x80, 2])
        }
        pub fn op(&mut self, op: u8) -> &mut Writer {
            self.0.push(op);
            self
        }
        pub fn str(&mut self, s: &str) -> &mut Writer {
            self.0.push(0x8c);
            self.0.push(s.len() as u8);
            self.0.extend(s.as_bytes());
            self
        }
        pub fn int(&mut self, i: i32) -> &mut Writer {
            self.0.push(b'J');
            self.0.extend(i.to_le_bytes());
            self
        }
        pub fn global(&mut self, module: &str, name: &str) -> &mut Writer {
            self.0.push(b'c');
            self.0.extend(format!("{module}\n{name}\n").as_bytes());
            self
        }
        pub fn ints(&mut self, v: &[i32]) -> &mut Writer {
            self.op(b'(');
            for &i in v {
                self.int(i);
            }
            self.op(b't')
        }
        /// `_rebuild_tensor_v2(storage, offset, shape, strides, False, OrderedDict())`.
        pub fn tensor(
            &mut self,
            class: &str,
            key: &str,
            numel: i32,
            offset: i32,
            shape: &[i32],
            strides: &[i32],
        ) -> &mut Writer {
            self.global("torch._utils", "_rebuild_tensor_v2").op(b'(');
            self.op(b'(')
                .str("storage")
                .global("torch", class)
                .str(key)
                .str("cpu")
                .int(numel);
            self.op(b't')
                .op(b'Q')
                .int(offset)
                .ints(shape)
                .ints(strides)
                .op(0x89);
            self.global("collections", "OrderedDict").op(b')').op(b'R');
            self.op(b't').op(b'R')
        }
        pub fn stop(&mut self) -> Vec<u8> {
            self.0.push(b'.');
            std::mem::take(&mut self.0)
        }
    }

    fn malformed(data: &[u8]) -> String {
        match load(data) {
            Err(PickleError::Malformed { reason, .. }) => reason,
            other => panic!("expected a malformed-pickle error, got {other:?}"),
        }
    }

    #[test]
    fn a_state_dict_of_two_tensors_is_read_in_order() {
        let mut w = Writer::new();
        w.op(b'}');
        w.str("b")
            .tensor("FloatStorage", "0", 6, 0, &[2, 3], &[3, 1])
            .op(b's');
        w.str("a")
            .tensor("HalfStorage", "1", 4, 1, &[3], &[1])
            .op(b's');
        let v = load(&w.stop()).unwrap();
        let Value::Dict(items) = v else {
            panic!("not a dict")
        };
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].0, Value::Str("b".into()));
        assert_eq!(
            items[1].1,
            Value::Tensor(TensorRef {
                storage: StorageRef {
                    dtype: StorageDtype::F16,
                    key: "1".into()
                },
                offset: 1,
                shape: vec![3],
                strides: vec![1],
            })
        );
    }

    #[test]
    fn globals_off_the_allow_list_are_refused_by_name() {
        let mut w = Writer::new();
        w.global("posix", "system").str("echo hi").op(0x85).op(b'R');
        assert_eq!(
            load(&w.stop()),
            Err(PickleError::Forbidden("posix.system".into()))
        );
        // The same through STACK_GLOBAL (protocol 4's spelling).
        let mut w = Writer::new();
        w.str("builtins").str("eval").op(0x93);
        assert_eq!(
            load(&w.stop()),
            Err(PickleError::Forbidden("builtins.eval".into()))
        );
        // A storage class torch has but mxrt does not read (complex numbers) is a global like any other.
        let mut w = Writer::new();
        w.op(b'}')
            .str("z")
            .tensor("ComplexFloatStorage", "0", 2, 0, &[2], &[1])
            .op(b's');
        assert_eq!(
            load(&w.stop()),
            Err(PickleError::Forbidden("torch.ComplexFloatStorage".into()))
        );
        assert!(PickleError::Forbidden("posix.system".into())
            .to_string()
            .contains("never runs pickled code"));
    }

    #[test]
    fn truncated_and_malformed_pickles_are_errors_not_panics() {
        let mut w = Writer::new();
        w.op(b'}')
            .str("w")
            .tensor("FloatStorage", "0", 4, 0, &[4], &[1])
            .op(b's');
        let whole = w.stop();
        for cut in 0..whole.len() {
            assert!(load(&whole[..cut]).is_err(), "cut at {cut}");
        }
        assert!(malformed(&[0x80, 9]).contains("protocol 9"));
        assert!(malformed(&[0x80, 2, b'h', 7]).contains("memo entry 7"));
        assert!(malformed(&[0x80, 2, b'0']).contains("empty stack"));
        assert!(malformed(&[0x80, 2, b'(', b'N', b'd', b'.']).contains("odd number"));
        assert!(malformed(&[0x80, 2, 0x8a, 9, 1, 1, 1, 1, 1, 1, 1, 1, 1]).contains("64 bits"));
        assert!(malformed(&[0x80, 2, b'i']).contains("opcode 0x69"));
        // A persistent id that is not a torch storage.
        let mut w = Writer::new();
        w.str("x").op(b'Q');
        assert!(malformed(&w.stop()).contains("persistent id"));
        // A tensor whose sizes and strides disagree in number.
        let mut w = Writer::new();
        w.tensor("FloatStorage", "0", 4, 0, &[2, 2], &[1]);
        assert!(malformed(&w.stop()).contains("2 sizes but 1 strides"));
        // REDUCE of a plain value (no allowed global to call).
        assert!(malformed(&[0x80, 2, b'N', b')', b'R', b'.']).contains("REDUCE"));
    }

    #[test]
    fn a_pickle_that_multiplies_itself_stops_at_the_budget() {
        // l = [0]; then 40 times: l = [l, l] through the memo: 2^40 values if copied naively.
        let mut w = Writer::new();
        w.op(b']').int(0).op(b'a').op(b'q').op(0);
        for i in 0..40u8 {
            w.op(b'(')
                .op(b'h')
                .op(i)
                .op(b'h')
                .op(i)
                .op(b'l')
                .op(b'q')
                .op(i + 1);
        }
        let reason = malformed(&w.stop());
        assert!(reason.contains("more than"), "{reason}");
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_refused() {
        let mut w = Writer::new();
        w.op(b']');
        for _ in 0..MAX_DEPTH + 5 {
            w.op(0x85); // TUPLE1: wrap the top of the stack once more
        }
        let reason = malformed(&w.stop());
        assert!(reason.contains("nested deeper"), "{reason}");
    }
}
