//! The SQL seam: [`Db`], one connection to SQLite (the default, one file)
//! or to PostgreSQL (`postgres://`, for teams that run several replicas;
//! over TLS as the URL's `sslmode` and `sslrootcert` say, see
//! [`pg_tls`](super::pg_tls)).
//!
//! The storage modules write every statement once, in SQLite's dialect,
//! and call the small part of rusqlite's API they need (`execute`,
//! `query_row`, `prepare(..).query_map`, transactions). On PostgreSQL a
//! statement is translated once ([`translate`]) and prepared once per
//! connection; values cross as [`Value`], SQLite's five storage classes,
//! so a `bool` or a `u32` reads and writes the same way on both.
//!
//! Write transactions ([`write_tx`]) are serialized on both: SQLite takes its
//! write lock at `BEGIN IMMEDIATE`; PostgreSQL takes one transaction-scoped
//! advisory lock, so a read-then-write in one transaction sees no other
//! writer, whichever replica that writer runs on.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use tokio_postgres::types::{IsNull, ToSql, Type};

use super::pg_tls;

/// One SQL value, as SQLite stores it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// NULL.
    Null,
    /// A 64-bit integer (also booleans, stored as 0 and 1).
    Int(i64),
    /// A double.
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

/// A database failure.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite failed.
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed.
    #[error("{}", pg_message(.0))]
    Postgres(tokio_postgres::Error),
    /// A query that must return a row returned none.
    #[error("query returned no rows")]
    NoRows,
    /// A column held something its reader cannot take.
    #[error("column {index}: {message}")]
    Conversion {
        /// The column.
        index: usize,
        /// What was wrong.
        message: String,
    },
    /// Anything else (a lost connection thread, a bad URL).
    #[error("{0}")]
    Other(String),
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> DbError {
        DbError::Postgres(e)
    }
}

fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("postgres: {}: {}", db.code().code(), db.message()),
        None => format!("postgres: {e}"),
    }
}

impl DbError {
    /// A conversion failure of column `index`.
    pub fn conversion(index: usize, message: impl std::fmt::Display) -> DbError {
        DbError::Conversion {
            index,
            message: message.to_string(),
        }
    }
}

/// A database result.
pub type DbResult<T> = Result<T, DbError>;

/// Maps "no rows" to `None`, as rusqlite's extension of the same name does.
pub trait OptionalExtension<T> {
    /// `Ok(None)` where the query returned no row.
    fn optional(self) -> Result<Option<T>, DbError>;
}

impl<T> OptionalExtension<T> for Result<T, DbError> {
    fn optional(self) -> Result<Option<T>, DbError> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(DbError::NoRows) | Err(DbError::Sqlite(rusqlite::Error::QueryReturnedNoRows)) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// Something that can be bound to a statement parameter.
pub trait ToValue {
    /// The value to bind.
    fn to_value(&self) -> Value;
}

macro_rules! int_to_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                Value::Int(*self as i64)
            }
        }
    )*};
}
int_to_value!(i64, i32, i16, u32, u16, u8, u64, usize);

impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}
impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}
impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}
impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}
impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, T::to_value)
    }
}

/// A statement's parameters: `[]`, `[a]`, `[a, b]` of one type, or
/// [`params!`] for mixed types.
pub trait Params {
    /// The values, in order.
    fn values(&self) -> Vec<Value>;
}

impl Params for &[&dyn ToValue] {
    fn values(&self) -> Vec<Value> {
        self.iter().map(|v| v.to_value()).collect()
    }
}
impl Params for &[Value] {
    fn values(&self) -> Vec<Value> {
        self.to_vec()
    }
}
impl Params for [&dyn ToValue; 0] {
    fn values(&self) -> Vec<Value> {
        Vec::new()
    }
}
macro_rules! array_params {
    ($($n:literal),*) => {$(
        impl<T: ToValue> Params for [T; $n] {
            fn values(&self) -> Vec<Value> {
                self.iter().map(ToValue::to_value).collect()
            }
        }
    )*};
}
array_params!(1, 2, 3, 4, 5, 6, 7, 8);

/// Parameters of mixed types: `params![a, b, c]`.
#[doc(hidden)]
#[macro_export]
macro_rules! __dpxdt_db_params {
    () => {
        &[] as &[&dyn $crate::storage::db::ToValue]
    };
    ($($p:expr),+ $(,)?) => {
        &[$(&$p as &dyn $crate::storage::db::ToValue),+] as &[&dyn $crate::storage::db::ToValue]
    };
}
pub use crate::__dpxdt_db_params as params;

/// Something a column can be read as.
pub trait FromValue: Sized {
    /// Converts column `index`'s value.
    fn from_value(v: &Value, index: usize) -> Result<Self, DbError>;
}

fn wrong(index: usize, v: &Value, want: &str) -> DbError {
    DbError::conversion(index, format!("cannot read {v:?} as {want}"))
}

macro_rules! int_from_value {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(v: &Value, index: usize) -> Result<Self, DbError> {
                match v {
                    Value::Int(i) => <$t>::try_from(*i)
                        .map_err(|_| wrong(index, v, stringify!($t))),
                    _ => Err(wrong(index, v, stringify!($t))),
                }
            }
        }
    )*};
}
int_from_value!(i64, i32, u32, u16, u8, u64, usize);

impl FromValue for bool {
    fn from_value(v: &Value, index: usize) -> Result<Self, DbError> {
        match v {
            Value::Int(i) => Ok(*i != 0),
            _ => Err(wrong(index, v, "bool")),
        }
    }
}
impl FromValue for f64 {
    fn from_value(v: &Value, index: usize) -> Result<Self, DbError> {
        match v {
            Value::Real(f) => Ok(*f),
            Value::Int(i) => Ok(*i as f64),
            _ => Err(wrong(index, v, "f64")),
        }
    }
}
impl FromValue for String {
    fn from_value(v: &Value, index: usize) -> Result<Self, DbError> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            Value::Blob(b) => String::from_utf8(b.clone()).map_err(|_| wrong(index, v, "text")),
            _ => Err(wrong(index, v, "text")),
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: &Value, index: usize) -> Result<Self, DbError> {
        match v {
            Value::Blob(b) => Ok(b.clone()),
            Value::Text(s) => Ok(s.as_bytes().to_vec()),
            _ => Err(wrong(index, v, "bytes")),
        }
    }
}
impl FromValue for Value {
    fn from_value(v: &Value, _: usize) -> Result<Self, DbError> {
        Ok(v.clone())
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value, index: usize) -> Result<Self, DbError> {
        match v {
            Value::Null => Ok(None),
            _ => T::from_value(v, index).map(Some),
        }
    }
}

/// A column of a [`Row`]: its position.
pub trait ColumnIndex {
    /// The position in `row`.
    fn position(&self, row: &Row) -> Result<usize, DbError>;
}
impl ColumnIndex for usize {
    fn position(&self, row: &Row) -> Result<usize, DbError> {
        if *self < row.values.len() {
            Ok(*self)
        } else {
            Err(DbError::conversion(*self, "no such column"))
        }
    }
}

/// One result row, read whole.
pub struct Row {
    values: Vec<Value>,
}

impl Row {
    /// Column `index` as a `T`.
    pub fn get<I: ColumnIndex, T: FromValue>(&self, index: I) -> Result<T, DbError> {
        let i = index.position(self)?;
        T::from_value(&self.values[i], i)
    }
}

/// Which SQL engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A connection to SQLite or PostgreSQL.
pub enum Db {
    /// A SQLite file.
    Sqlite(rusqlite::Connection),
    /// A PostgreSQL server.
    Postgres(Box<PgConn>),
}

/// A PostgreSQL connection whose I/O runs on a small runtime of its own, so
/// blocking code (the storage modules) may use it from any thread, inside
/// an async runtime or not.
///
/// A lost connection (the database restarted, a proxy cut it) is made again
/// on the next statement, except inside a transaction: there, every
/// statement fails until the transaction ends, so no statement of a
/// transaction the server already rolled back can run on its own.
pub struct PgConn {
    config: tokio_postgres::Config,
    /// The URL's `sslmode`, for error messages.
    ssl_mode: pg_tls::SslMode,
    /// TLS as the URL's `sslmode` and `sslrootcert` ask (made once: a
    /// reconnection reads no CA file again).
    tls: pg_tls::MakeTls,
    client: RefCell<Arc<tokio_postgres::Client>>,
    statements: RefCell<HashMap<String, tokio_postgres::Statement>>,
    /// Between `BEGIN` and `COMMIT` / `ROLLBACK`.
    in_transaction: std::cell::Cell<bool>,
    /// A `BEGIN` (with its lock) not sent yet: it goes out with the
    /// transaction's first statement, in the same round trip.
    begin: RefCell<Option<String>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for PgConn {
    fn drop(&mut self) {
        // Dropping a runtime may block, which async code must not do.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// The tokio-postgres settings of the `postgres://` URL `url`, and its TLS
/// settings, which tokio-postgres does not read itself (see [`pg_tls`]).
pub fn parse_url(url: &str) -> Result<(tokio_postgres::Config, pg_tls::TlsSettings), String> {
    let (rest, settings) = pg_tls::split_url(url)?;
    let mut config: tokio_postgres::Config = rest.parse().map_err(|e| error_chain(&e))?;
    config.ssl_mode(settings.mode.negotiation());
    Ok((config, settings))
}

/// The hosts and ports of `config`, as a user would write them.
fn shown_hosts(config: &tokio_postgres::Config) -> String {
    let ports = config.get_ports();
    let port = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
    let mut shown: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| match host {
            tokio_postgres::config::Host::Tcp(name) if name.contains(':') => {
                format!("[{name}]:{}", port(i))
            }
            tokio_postgres::config::Host::Tcp(name) => format!("{name}:{}", port(i)),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(dir) => {
                format!("{}/.s.PGSQL.{}", dir.display(), port(i))
            }
        })
        .collect();
    if shown.is_empty() {
        shown = config
            .get_hostaddrs()
            .iter()
            .enumerate()
            .map(|(i, addr)| std::net::SocketAddr::new(*addr, port(i)).to_string())
            .collect();
    }
    shown.join(", ")
}

/// `e` and each of its causes, joined by ": ".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut shown = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        // Some errors repeat their cause in their own words.
        if !shown.ends_with(&more) {
            shown.push_str(": ");
            shown.push_str(&more);
        }
        cause = c.source();
    }
    shown
}

/// The advisory lock every PostgreSQL write transaction takes: alone in a
/// [`write_tx`], shared in a [`build_write_tx`].
const PG_WRITE_LOCK: i64 = 0x6470_7864_7401;

/// The first key of each build's advisory lock (the second is the build).
const PG_BUILD_LOCKS: i32 = 0x6470_7862;

impl PgConn {
    /// Connects to `url` (`postgres://user:password@host:port/db`, with
    /// TLS as its `sslmode` and `sslrootcert` say: see [`pg_tls`]).
    pub fn connect(url: &str) -> Result<PgConn, DbError> {
        let (config, settings) = parse_url(url).map_err(DbError::Other)?;
        let tls = pg_tls::MakeTls::new(&settings).map_err(|e| {
            DbError::Other(format!(
                "cannot connect to PostgreSQL at {}: {e}",
                shown_hosts(&config)
            ))
        })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("dpxdt-postgres")
            .enable_all()
            .build()
            .map_err(|e| DbError::Other(format!("cannot start the database thread: {e}")))?;
        let client = match Self::open(&config, settings.mode, &tls, &runtime) {
            Ok(client) => client,
            Err(e) => {
                // Dropping a runtime may block, which async code (the
                // server opening its store) must not do: it would panic
                // instead of saying why the database is out of reach.
                runtime.shutdown_background();
                return Err(e);
            }
        };
        Ok(PgConn {
            config,
            ssl_mode: settings.mode,
            tls,
            client: RefCell::new(Arc::new(client)),
            statements: RefCell::new(HashMap::new()),
            in_transaction: std::cell::Cell::new(false),
            begin: RefCell::new(None),
            runtime: Some(runtime),
        })
    }

    /// A new session, its socket driven by a task on `runtime`. A failure
    /// names the host and the whole chain of causes: tokio-postgres's own
    /// words ("error performing TLS handshake") leave out the why.
    fn open(
        config: &tokio_postgres::Config,
        ssl_mode: pg_tls::SslMode,
        tls: &pg_tls::MakeTls,
        runtime: &tokio::runtime::Runtime,
    ) -> Result<tokio_postgres::Client, DbError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let (config, tls) = (config.clone(), tls.clone());
        let shown = shown_hosts(&config);
        runtime.spawn(async move {
            match config.connect(tls).await {
                Ok((client, connection)) => {
                    let _ = tx.send(Ok(client));
                    if let Err(e) = connection.await {
                        tracing::error!("the database connection ended: {}", pg_message(&e));
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        });
        rx.recv()
            .map_err(|_| DbError::Other("the database thread ended".into()))?
            .map_err(|e| {
                DbError::Other(format!(
                    "cannot connect to PostgreSQL at {shown}: {} (sslmode={ssl_mode})",
                    error_chain(&e)
                ))
            })
    }

    /// The live client: a new session if the last one was lost, outside a
    /// transaction.
    fn client(&self) -> Result<Arc<tokio_postgres::Client>, DbError> {
        if !self.client.borrow().is_closed() {
            return Ok(self.client.borrow().clone());
        }
        if self.in_transaction.get() {
            return Err(DbError::Other(
                "the database connection was lost in the middle of a transaction".into(),
            ));
        }
        let runtime = self
            .runtime
            .as_ref()
            .expect("the runtime lives as long as the connection");
        let client = Arc::new(Self::open(&self.config, self.ssl_mode, &self.tls, runtime)?);
        tracing::warn!("reconnected to the database");
        self.statements.borrow_mut().clear();
        *self.client.borrow_mut() = client.clone();
        Ok(client)
    }

    /// Polls `work` on this thread until it is done. A client's request
    /// only passes messages to the connection task, which does the socket
    /// I/O on the connection's runtime; so no runtime is needed here, and
    /// each statement costs one hand-over each way.
    fn wait<T>(
        &self,
        work: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, DbError> {
        Ok(block_on(work)?)
    }

    /// The prepared form of `sql` (translated), prepared once per connection.
    fn statement(
        &self,
        client: &tokio_postgres::Client,
        sql: &str,
    ) -> Result<tokio_postgres::Statement, DbError> {
        if let Some(found) = self.statements.borrow().get(sql) {
            return Ok(found.clone());
        }
        let text = translate(sql);
        let stmt = self.wait(client.prepare(&text)).map_err(|e| {
            let shown: Vec<&str> = sql.split_whitespace().collect();
            DbError::Other(format!("{e}, preparing: {}", shown.join(" ")))
        })?;
        let mut cache = self.statements.borrow_mut();
        if cache.len() > 512 {
            cache.clear();
        }
        cache.insert(sql.to_owned(), stmt.clone());
        Ok(stmt)
    }

    /// Runs `works` in order, after the deferred `BEGIN` if there is one:
    /// all are sent before any answer is awaited, so together they cost one
    /// round trip (the server takes the messages in order, so each runs
    /// inside the transaction). The first error is the one returned,
    /// the `BEGIN`'s before any other.
    fn pipelined<T, F>(
        &self,
        client: &tokio_postgres::Client,
        works: Vec<F>,
    ) -> Result<Vec<T>, DbError>
    where
        F: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let begin = self.begin.borrow_mut().take();
        if begin.is_none() && works.len() == 1 {
            let work = works.into_iter().next().expect("one");
            return Ok(vec![self.wait(work)?]);
        }
        let begun = async {
            match &begin {
                Some(sql) => client.batch_execute(sql).await,
                None => Ok(()),
            }
        };
        let mut begun = std::pin::pin!(begun);
        let mut works: Vec<std::pin::Pin<Box<F>>> = works.into_iter().map(Box::pin).collect();
        let mut began = None;
        let mut outs: Vec<Option<Result<T, tokio_postgres::Error>>> =
            works.iter().map(|_| None).collect();
        block_on(std::future::poll_fn(|cx| {
            // Polled in order, so the requests are queued in order.
            if began.is_none()
                && let std::task::Poll::Ready(r) = begun.as_mut().poll(cx)
            {
                began = Some(r);
            }
            for (work, out) in works.iter_mut().zip(outs.iter_mut()) {
                if out.is_none()
                    && let std::task::Poll::Ready(r) = work.as_mut().poll(cx)
                {
                    *out = Some(r);
                }
            }
            if began.is_some() && outs.iter().all(Option::is_some) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        }));
        began.expect("polled to the end")?;
        let mut results = Vec::with_capacity(outs.len());
        for out in outs {
            results.push(out.expect("polled to the end")?);
        }
        Ok(results)
    }

    fn after_begin<T>(
        &self,
        client: &tokio_postgres::Client,
        work: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, DbError> {
        let mut out = self.pipelined(client, vec![work])?;
        Ok(out.pop().expect("one result for one statement"))
    }

    /// Statements sent together (see [`Db::query_many`]).
    fn query_many(&self, statements: &[(&str, Vec<Value>)]) -> Result<Vec<Vec<Row>>, DbError> {
        let client = self.client()?;
        let prepared = statements
            .iter()
            .map(|(sql, _)| self.statement(&client, sql))
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<Vec<&(dyn ToSql + Sync)>> = statements
            .iter()
            .map(|(_, values)| values.iter().map(|v| v as _).collect())
            .collect();
        let works = prepared
            .iter()
            .zip(&refs)
            .map(|(stmt, refs)| client.query(stmt, refs))
            .collect();
        self.pipelined(&client, works)?
            .iter()
            .map(|rows| rows.iter().map(pg_row).collect())
            .collect()
    }

    /// Opens a transaction with `begin` (`BEGIN`, perhaps with a lock):
    /// now, or `deferred` until the transaction's first statement.
    fn begin(&self, begin: &str, deferred: bool) -> Result<(), DbError> {
        // A lost session is replaced here, before the transaction starts.
        let client = self.client()?;
        self.in_transaction.set(true);
        if deferred {
            *self.begin.borrow_mut() = Some(begin.to_owned());
            return Ok(());
        }
        self.wait(client.batch_execute(begin))
    }

    fn execute(&self, sql: &str, values: Vec<Value>) -> Result<usize, DbError> {
        let client = self.client()?;
        let stmt = self.statement(&client, sql)?;
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v as _).collect();
        Ok(self.after_begin(&client, client.execute(&stmt, &refs))? as usize)
    }

    fn query(&self, sql: &str, values: Vec<Value>) -> Result<Vec<Row>, DbError> {
        let client = self.client()?;
        let stmt = self.statement(&client, sql)?;
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v as _).collect();
        let rows = self.after_begin(&client, client.query(&stmt, &refs))?;
        rows.iter().map(pg_row).collect()
    }

    fn batch(&self, sql: &str) -> Result<(), DbError> {
        let ends = sql == "COMMIT" || sql == "ROLLBACK";
        if ends && self.begin.borrow_mut().take().is_some() {
            // Nothing ran in the transaction: nothing to send.
            self.in_transaction.set(false);
            return Ok(());
        }
        if sql == "ROLLBACK" && self.client.borrow().is_closed() {
            // The server rolled it back when the session ended.
            self.in_transaction.set(false);
            return Ok(());
        }
        let client = self.client()?;
        let mut text = translate(sql);
        if let Some(begin) = self.begin.borrow_mut().take() {
            text = format!("{begin}; {text}");
        }
        let done = self.wait(client.batch_execute(&text));
        if sql.starts_with("BEGIN") {
            self.in_transaction.set(true);
        } else if ends {
            self.in_transaction.set(false);
        }
        done
    }
}

/// Runs a future to completion on the current thread, parking it while
/// the future waits.
fn block_on<F: Future>(work: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut work = std::pin::pin!(work);
    loop {
        if let std::task::Poll::Ready(out) = work.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

fn pg_row(row: &tokio_postgres::Row) -> Result<Row, DbError> {
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let value = match *column.type_() {
            Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(Value::Int),
            Type::INT4 => row
                .try_get::<_, Option<i32>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::INT2 => row
                .try_get::<_, Option<i16>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::BOOL => row
                .try_get::<_, Option<bool>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::FLOAT8 => row.try_get::<_, Option<f64>>(i)?.map(Value::Real),
            Type::FLOAT4 => row
                .try_get::<_, Option<f32>>(i)?
                .map(|v| Value::Real(v.into())),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
                row.try_get::<_, Option<String>>(i)?.map(Value::Text)
            }
            Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob),
            Type::NUMERIC => row.try_get::<_, Option<Numeric>>(i)?.map(|n| n.0),
            // What a function called for its effect returns.
            Type::VOID => None,
            ref other => {
                return Err(DbError::conversion(
                    i,
                    format!("unsupported column type {other}"),
                ));
            }
        };
        values.push(value.unwrap_or(Value::Null));
    }
    Ok(Row { values })
}

/// PostgreSQL's NUMERIC (what `SUM` of integers returns), read as an integer
/// when it has no fraction digits and as a double otherwise.
struct Numeric(Value);

impl<'a> tokio_postgres::types::FromSql<'a> for Numeric {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let word = |i: usize| -> Result<u16, Box<dyn std::error::Error + Sync + Send>> {
            raw.get(i * 2..i * 2 + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .ok_or_else(|| "short NUMERIC".into())
        };
        let ndigits = usize::from(word(0)?);
        let weight = i32::from(word(1)? as i16);
        let sign = word(2)?;
        let dscale = word(3)?;
        if sign == 0xC000 {
            return Ok(Numeric(Value::Real(f64::NAN)));
        }
        let mut float = 0f64;
        let mut int: Option<i128> = Some(0);
        for k in 0..ndigits {
            let digit = word(4 + k)?;
            let power = weight - k as i32;
            float += f64::from(digit) * 10000f64.powi(power);
            int = match (int, power >= 0) {
                (Some(acc), true) => 10000i128
                    .checked_pow(power as u32)
                    .and_then(|p| p.checked_mul(i128::from(digit)))
                    .and_then(|v| acc.checked_add(v)),
                (acc, false) if digit == 0 => acc,
                _ => None,
            };
        }
        let negative = sign == 0x4000;
        let int = int.and_then(|v| i64::try_from(if negative { -v } else { v }).ok());
        Ok(Numeric(match int {
            Some(v) if dscale == 0 => Value::Int(v),
            _ => Value::Real(if negative { -float } else { float }),
        }))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match (self, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Int(i), &Type::INT8) => i.to_sql(ty, out),
            (Value::Int(i), &Type::INT4) => i32::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::INT2) => i16::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::BOOL) => (*i != 0).to_sql(ty, out),
            (Value::Int(i), &Type::FLOAT8) => (*i as f64).to_sql(ty, out),
            (Value::Int(i), &Type::TEXT | &Type::VARCHAR) => i.to_string().to_sql(ty, out),
            (Value::Real(f), &Type::FLOAT8) => f.to_sql(ty, out),
            (Value::Real(f), &Type::FLOAT4) => (*f as f32).to_sql(ty, out),
            (Value::Text(s), _) => s.as_str().to_sql(ty, out),
            (Value::Blob(b), &Type::BYTEA) => b.as_slice().to_sql(ty, out),
            (Value::Blob(b), _) => std::str::from_utf8(b)?.to_sql(ty, out),
            (v, ty) => Err(format!("cannot bind {v:?} to a {ty} parameter").into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

fn sqlite_value(v: rusqlite::types::ValueRef<'_>, index: usize) -> Result<Value, DbError> {
    use rusqlite::types::ValueRef;
    Ok(match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(
            String::from_utf8(t.to_vec()).map_err(|_| DbError::conversion(index, "not UTF-8"))?,
        ),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    })
}

impl Db {
    /// Opens a SQLite file (created if missing).
    pub fn sqlite(conn: rusqlite::Connection) -> Db {
        Db::Sqlite(conn)
    }

    /// Which engine this is.
    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Sqlite(_) => Dialect::Sqlite,
            Db::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs one statement; the number of rows it changed.
    pub fn execute<P: Params>(&self, sql: &str, params: P) -> Result<usize, DbError> {
        match self {
            Db::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                Ok(stmt.execute(rusqlite::params_from_iter(params.values()))?)
            }
            Db::Postgres(c) => c.execute(sql, params.values()),
        }
    }

    /// Every row `sql` returns.
    pub fn query_rows<P: Params>(&self, sql: &str, params: P) -> Result<Vec<Row>, DbError> {
        match self {
            Db::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let count = stmt.column_count();
                let mut rows = stmt.query(rusqlite::params_from_iter(params.values()))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    let mut values = Vec::with_capacity(count);
                    for i in 0..count {
                        values.push(sqlite_value(r.get_ref(i)?, i)?);
                    }
                    out.push(Row { values });
                }
                Ok(out)
            }
            Db::Postgres(c) => c.query(sql, params.values()),
        }
    }

    /// The rows of each statement, for statements whose parameters do not
    /// depend on each other's results. PostgreSQL is sent them all before
    /// it answers any, so they cost one round trip instead of one each
    /// (worth it inside a write lock); SQLite runs them in turn.
    pub fn query_many(&self, statements: &[(&str, Vec<Value>)]) -> Result<Vec<Vec<Row>>, DbError> {
        match self {
            Db::Sqlite(_) => statements
                .iter()
                .map(|(sql, values)| self.query_rows(sql, values.as_slice()))
                .collect(),
            Db::Postgres(c) => c.query_many(statements),
        }
    }

    /// The first row `sql` returns, through `f`; [`DbError::NoRows`] if none.
    pub fn query_row<P: Params, T>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&Row) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let rows = self.query_rows(sql, params)?;
        f(rows.first().ok_or(DbError::NoRows)?)
    }

    /// A statement to run (possibly many times).
    pub fn prepare(&self, sql: &str) -> Result<Stmt<'_>, DbError> {
        Ok(Stmt {
            db: self,
            sql: sql.to_owned(),
        })
    }

    /// The same as [`prepare`](Db::prepare): statements are always cached.
    pub fn prepare_cached(&self, sql: &str) -> Result<Stmt<'_>, DbError> {
        self.prepare(sql)
    }

    /// Runs statements without parameters, separated by `;`.
    pub fn execute_batch(&self, sql: &str) -> Result<(), DbError> {
        match self {
            Db::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Db::Postgres(c) => c.batch(sql),
        }
    }

    /// The id the last `INSERT` into a table with an integer id gave.
    pub fn last_insert_rowid(&self) -> Result<i64, DbError> {
        match self {
            Db::Sqlite(c) => Ok(c.last_insert_rowid()),
            Db::Postgres(c) => c
                .query("SELECT lastval()", Vec::new())?
                .first()
                .ok_or(DbError::NoRows)?
                .get(0),
        }
    }

    /// Starts a transaction without the write lock, for PostgreSQL code that
    /// locks the rows it writes itself (`FOR UPDATE`) and so may run beside
    /// other replicas' writers. (On SQLite a write in it could fail as busy.)
    pub fn unlocked_tx(&mut self) -> Result<Tx<'_>, DbError> {
        self.begin("BEGIN", true)?;
        Ok(Tx {
            db: self,
            open: true,
        })
    }

    /// Starts a transaction with `sql`. PostgreSQL may be sent it
    /// (`deferred`) with the transaction's first statement, one round trip
    /// for both: then nothing the caller does before that statement is
    /// inside the transaction or under its lock.
    fn begin(&self, sql: &str, deferred: bool) -> Result<(), DbError> {
        match self {
            Db::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Db::Postgres(c) => c.begin(sql, deferred),
        }
    }
}

/// Starts a write transaction that holds the database's write lock when it
/// returns, so a read-then-write inside it can never be invalidated by
/// another writer (on PostgreSQL: by another replica's writer either), and
/// what the caller does to files or a bucket inside it is under the lock.
pub fn write_tx(db: &mut Db) -> Result<Tx<'_>, DbError> {
    let begin = match db {
        Db::Sqlite(_) => "BEGIN IMMEDIATE".to_owned(),
        // Should the lock fail, the transaction is open, and dropping the
        // Tx rolls it back.
        Db::Postgres(_) => format!("BEGIN; SELECT pg_advisory_xact_lock({PG_WRITE_LOCK})"),
    };
    let tx = Tx { db, open: true };
    tx.db.begin(&begin, false)?;
    Ok(tx)
}

/// Starts a write transaction confined to one build's rows (its releases,
/// runs, tasks and artifact ownership; the shared `artifact` rows only
/// through `INSERT OR IGNORE`). On SQLite it is [`write_tx`]. On PostgreSQL
/// it shares the database lock with other builds' transactions and holds
/// the build's own lock alone: writers of different builds run side by
/// side on all replicas, while writers of one build, and every [`write_tx`]
/// (which holds the database lock alone), are still serialized with it.
/// Both locks are always taken in that order, so they cannot deadlock.
pub fn build_write_tx(db: &mut Db, build: i64) -> Result<Tx<'_>, DbError> {
    build_tx(db, build, false)
}

/// [`build_write_tx`] for a transaction whose every effect is a statement:
/// on PostgreSQL the locks are taken with its first statement, one round
/// trip less. Nothing done before that statement is under the lock, so
/// whatever writes files or bucket objects uses [`build_write_tx`].
pub fn build_statements_tx(db: &mut Db, build: i64) -> Result<Tx<'_>, DbError> {
    build_tx(db, build, true)
}

fn build_tx(db: &mut Db, build: i64, deferred: bool) -> Result<Tx<'_>, DbError> {
    let begin = match db {
        Db::Sqlite(_) => "BEGIN IMMEDIATE".to_owned(),
        // The build's lock is in the two-key space, which never meets the
        // one-key lock; builds past 2^31 share keys, which only serializes
        // more.
        Db::Postgres(_) => format!(
            "BEGIN; SELECT pg_advisory_xact_lock_shared({PG_WRITE_LOCK}); \
             SELECT pg_advisory_xact_lock({PG_BUILD_LOCKS}, {})",
            build.rem_euclid(i64::from(i32::MAX)) as i32
        ),
    };
    let tx = Tx { db, open: true };
    tx.db.begin(&begin, deferred)?;
    Ok(tx)
}

/// An open transaction: rolled back when dropped uncommitted.
pub struct Tx<'a> {
    db: &'a Db,
    open: bool,
}

impl Tx<'_> {
    /// Makes the transaction's writes durable and visible.
    pub fn commit(mut self) -> Result<(), DbError> {
        self.db.execute_batch("COMMIT")?;
        self.open = false;
        Ok(())
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.db.execute_batch("ROLLBACK");
        }
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Db;
    fn deref(&self) -> &Db {
        self.db
    }
}

/// A statement bound to a connection.
pub struct Stmt<'a> {
    db: &'a Db,
    sql: String,
}

impl Stmt<'_> {
    /// Every row, each through `f`.
    pub fn query_map<P: Params, T>(
        &mut self,
        params: P,
        mut f: impl FnMut(&Row) -> Result<T, DbError>,
    ) -> Result<std::vec::IntoIter<Result<T, DbError>>, DbError> {
        let rows = self.db.query_rows(&self.sql, params)?;
        Ok(rows.iter().map(&mut f).collect::<Vec<_>>().into_iter())
    }

    /// The first row through `f`.
    pub fn query_row<P: Params, T>(
        &mut self,
        params: P,
        f: impl FnOnce(&Row) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        self.db.query_row(&self.sql, params, f)
    }

    /// Runs the statement; the number of rows it changed.
    pub fn execute<P: Params>(&mut self, params: P) -> Result<usize, DbError> {
        self.db.execute(&self.sql, params)
    }
}

/// Rewrites a statement from SQLite's dialect into PostgreSQL's:
/// `?N` and `?` become `$N`; `INSERT OR IGNORE` becomes
/// `INSERT … ON CONFLICT DO NOTHING`; `LIKE` becomes `ILIKE` (SQLite's is
/// case-blind); the table `user`, a reserved word there, is quoted.
/// Text in single quotes is left alone.
pub fn translate(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 32);
    let mut words: Vec<String> = Vec::new();
    let mut next_param = 0;
    let mut chars = sql.chars().peekable();
    // The quote that opened the text or identifier being copied, if any.
    let mut quoted: Option<char> = None;
    let mut or_ignore = false;
    while let Some(c) = chars.next() {
        if let Some(q) = quoted {
            out.push(c);
            if c == q {
                quoted = None;
            }
            continue;
        }
        if c == '\'' || c == '"' {
            quoted = Some(c);
            out.push(c);
        } else if c == '?' {
            let mut digits = String::new();
            while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                digits.push(d);
                chars.next();
            }
            if digits.is_empty() {
                next_param += 1;
                digits = next_param.to_string();
            }
            out.push('$');
            out.push_str(&digits);
        } else if c.is_ascii_alphabetic() || c == '_' {
            let mut word = String::from(c);
            while let Some(d) = chars
                .peek()
                .copied()
                .filter(|d| d.is_ascii_alphanumeric() || *d == '_')
            {
                word.push(d);
                chars.next();
            }
            let upper = word.to_ascii_uppercase();
            let prev: Vec<&str> = words.iter().rev().take(2).map(String::as_str).collect();
            if upper == "IGNORE" && prev == ["OR", "INSERT"] {
                // Drop the "OR " already written, and this word.
                let cut = out.trim_end().len() - 2;
                let cut = out[..cut].trim_end().len();
                out.truncate(cut);
                or_ignore = true;
            } else if upper == "USER" && !out.ends_with('.') {
                out.push_str("\"user\"");
            } else if upper == "LIKE" {
                out.push_str("ILIKE");
            } else if upper == "RETURNING" && or_ignore {
                out.push_str("ON CONFLICT DO NOTHING RETURNING");
                or_ignore = false;
            } else {
                out.push_str(&word);
            }
            words.push(upper);
        } else {
            out.push(c);
        }
    }
    if or_ignore {
        let trimmed = out.trim_end().trim_end_matches(';').len();
        out.truncate(trimmed);
        out.push_str(" ON CONFLICT DO NOTHING");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_translate_to_postgres() {
        assert_eq!(
            translate("SELECT a FROM user u WHERE u.id = ?1 AND name LIKE ?2 ESCAPE '\\'"),
            "SELECT a FROM \"user\" u WHERE u.id = $1 AND name ILIKE $2 ESCAPE '\\'"
        );
        assert_eq!(
            translate("INSERT OR IGNORE INTO t (a, b) VALUES (?, ?)"),
            "INSERT INTO t (a, b) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            translate("insert or ignore into t (a) values (?1) returning a"),
            "insert into t (a) values ($1) ON CONFLICT DO NOTHING RETURNING a"
        );
        // Quoted text is not touched, and user_id is not the table.
        assert_eq!(
            translate("SELECT 'who? user LIKE' , user_id FROM x WHERE y = ?3"),
            "SELECT 'who? user LIKE' , user_id FROM x WHERE y = $3"
        );
        assert_eq!(
            translate("CREATE INDEX e ON \"user\" (lower(email))"),
            "CREATE INDEX e ON \"user\" (lower(email))"
        );
    }

    #[test]
    fn numerics_read_as_integers_or_doubles() {
        use tokio_postgres::types::FromSql;
        // PostgreSQL's binary NUMERIC: ndigits, weight, sign, dscale, then
        // base-10000 digits, all big-endian 16-bit words.
        let numeric = |words: &[u16]| {
            let raw: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
            Numeric::from_sql(&Type::NUMERIC, &raw).unwrap().0
        };
        assert_eq!(numeric(&[0, 0, 0, 0]), Value::Int(0));
        assert_eq!(numeric(&[2, 1, 0, 0, 1234, 5678]), Value::Int(12_345_678));
        assert_eq!(numeric(&[1, 2, 0x4000, 0, 7]), Value::Int(-700_000_000));
        assert_eq!(numeric(&[2, 0, 0, 1, 1, 5000]), Value::Real(1.5));
        // Beyond i64: a double.
        assert!(matches!(
            numeric(&[6, 5, 0, 0, 9999, 9999, 9999, 9999, 9999, 9999]),
            Value::Real(_)
        ));
        assert!(
            Numeric::from_sql(&Type::NUMERIC, &[0, 1]).is_err(),
            "short input"
        );
    }

    #[test]
    fn values_round_trip_through_sqlite() {
        let db = Db::sqlite(rusqlite::Connection::open_in_memory().unwrap());
        db.execute_batch("CREATE TABLE t (i INTEGER, f REAL, s TEXT, b BLOB, n INTEGER)")
            .unwrap();
        db.execute(
            "INSERT INTO t VALUES (?1, ?2, ?3, ?4, ?5)",
            params![true, 1.5f64, "x", vec![1u8, 2], None::<i64>],
        )
        .unwrap();
        let row = db
            .query_row("SELECT i, f, s, b, n FROM t", [], |r| {
                Ok((
                    r.get::<_, bool>(0)?,
                    r.get::<_, f64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                ))
            })
            .unwrap();
        assert_eq!(row, (true, 1.5, "x".to_owned(), vec![1, 2], None));
        assert!(
            db.query_row("SELECT i FROM t WHERE i = 5", [], |r| r.get::<_, i64>(0))
                .optional()
                .unwrap()
                .is_none()
        );
        assert!(
            db.query_row("SELECT s FROM t", [], |r| r.get::<_, i64>(0))
                .is_err()
        );
    }
}
