//! Validating the whole chain from the stored rows.
//!
//! The chain is cut into two ranges of blocks per core, walked at once in
//! one database snapshot: each range is read in pages of [`PAGE_BLOCKS`]
//! with their entries and transactions (these two as binary `COPY`, read
//! in place: [`crate::db::binary_copy`]), so memory stays bounded however
//! long the chain is, and each page is checked on a blocking thread while
//! the other ranges wait on the database. For each block: the index
//! follows the previous one, `previous_hash` is the previous block's hash
//! (where two ranges meet, the first block of the later one against the
//! last of the earlier), every leaf is rebuilt from its transaction row and
//! matches the stored leaf hash, the Merkle root of the rebuilt leaves
//! matches, the header is the canonical form of the block's fields,
//! `block_hash` is its SHA3-256, and the signature verifies under the
//! sealer's public key, trusted only when its private half opens under the
//! master key (a page's signatures are verified as one batch). Finally no
//! transaction may be outside both the chain and the queue, or in both.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use chainpay_core::chain::block::{
    verify_all, verify_with, BlockHeader, PublicKey, Signed, GENESIS_PREVIOUS_HASH,
};
use chainpay_core::chain::merkle;
use chainpay_core::crypto::aead::MasterKey;
use serde::{Deserialize, Serialize};
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};
use utoipa::ToSchema;
use uuid::Uuid;

use super::authority;
use super::leaf::LeafRow;
use crate::db::binary_copy::{self, Fields, Tuples};

/// Blocks read per round trip.
const PAGE_BLOCKS: i64 = 200;

/// Ranges walked at once, at most.
const MOST_RANGES: usize = 8;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ChainReport {
    pub valid: bool,
    pub blocks_checked: i64,
    pub transactions_checked: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_invalid_block: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// How far one walk got: the blocks and transactions found valid, the
/// hashes at its two ends, and the first invalid block if any.
#[derive(Default)]
struct Walk {
    blocks_checked: i64,
    transactions_checked: i64,
    /// The `previous_hash` of the walk's first block.
    first_previous: Option<String>,
    /// The hash of the last valid block.
    last_hash: Option<String>,
    invalid: Option<(i64, String)>,
}

impl Walk {
    fn report(&self, invalid: Option<(i64, String)>) -> ChainReport {
        ChainReport {
            valid: invalid.is_none(),
            blocks_checked: self.blocks_checked,
            transactions_checked: self.transactions_checked,
            first_invalid_block: invalid.as_ref().map(|(block, _)| *block),
            reason: invalid.map(|(_, reason)| reason),
        }
    }

    /// Adds the walk that follows this one.
    fn then(&mut self, next: &Walk) {
        self.blocks_checked += next.blocks_checked;
        self.transactions_checked += next.transactions_checked;
        if next.last_hash.is_some() {
            self.last_hash.clone_from(&next.last_hash);
        }
    }
}

/// A leaf as stored.
struct Entry {
    block_index: i64,
    leaf_index: i32,
    tx_id: Uuid,
    /// The `seq` of the transaction row the leaf is rebuilt from.
    tx_seq: i64,
    /// The stored leaf hash, if it is as long as the hex the sealer writes
    /// (one of any other length matches nothing).
    leaf_hash: Option<[u8; 64]>,
}

/// The transaction rows a page's entries point at (and the few between
/// them), by sequence number.
struct Rows(Vec<(i64, LeafRow)>);

impl Rows {
    fn get(&self, seq: i64) -> Option<&LeafRow> {
        let found = self.0.binary_search_by_key(&seq, |(s, _)| *s).ok()?;
        Some(&self.0[found].1)
    }
}

/// A stored block, as validation reads it.
struct BlockRow {
    block_index: i64,
    previous_hash: String,
    merkle_root: String,
    sealed_at: chrono::DateTime<chrono::Utc>,
    tx_count: i32,
    sealer: String,
    header: String,
    block_hash: String,
    signature: String,
}

/// Each sealer's public key, decoded once (`None`: not trusted).
type Authorities = Arc<HashMap<String, Option<PublicKey>>>;

/// One validation at a time in a process: each holds up to a quarter of
/// the pool for its whole walk.
static ONE_AT_A_TIME: Semaphore = Semaphore::const_new(1);

/// Walks the whole chain and names the first invalid block.
///
/// Everything is read in one snapshot, exported by the transaction that
/// counts the blocks and walks the first range, and imported by each other
/// range's: blocks sealed meanwhile are left for the next run, and the
/// final tally of entries and queue sees exactly the chain that was walked.
/// A row with a wild index cannot hide: it is counted, so some index below
/// the count is missing. Only authorities whose keys open under `master`
/// are trusted.
pub async fn validate(pool: &PgPool, master: &MasterKey) -> anyhow::Result<ChainReport> {
    let _turn = ONE_AT_A_TIME.acquire().await?;
    let mut view = snapshot(pool, None).await?;
    let exported = sqlx::query_scalar!(r#"SELECT pg_export_snapshot() AS "id!""#)
        .fetch_one(&mut *view)
        .await?;
    let authorities: Authorities = Arc::new(authority::trusted(&mut view, master).await?);
    let blocks = sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM blocks"#)
        .fetch_one(&mut *view)
        .await?;
    let cut = ranges(blocks, parallel_ranges(pool));
    let own = async {
        match cut.first() {
            Some(&(first, end)) => walk(&mut view, authorities.clone(), first, end).await,
            None => Ok(Walk::default()),
        }
    };
    // Each other range is a task of its own, so decoding its rows runs on
    // another core than this one's; dropping the set (a caller gone) aborts
    // them and returns their connections.
    let mut tasks = JoinSet::new();
    for (position, &(first, end)) in cut.iter().enumerate().skip(1) {
        let range = walk_in(
            pool.clone(),
            exported.clone(),
            authorities.clone(),
            first,
            end,
        );
        tasks.spawn(async move { (position, range.await) });
    }
    let others = async {
        let mut walks = Vec::with_capacity(tasks.len());
        while let Some(done) = tasks.join_next().await {
            let (position, walk) = done?;
            walks.push((position, walk?));
        }
        walks.sort_unstable_by_key(|(position, _)| *position);
        anyhow::Ok(walks.into_iter().map(|(_, walk)| walk))
    };
    let (own, others) = tokio::try_join!(own, others)?;
    let chain = match joined(std::iter::once(own).chain(others), &cut) {
        Ok(chain) => chain,
        Err(broken) => return Ok(broken),
    };
    let stray = stray_transactions(&mut view, chain.blocks_checked).await?;
    Ok(chain.report(stray))
}

/// The ranges' walks as one, from genesis; `Err` is the report of the
/// first break (inside a range, or where two meet).
fn joined(walks: impl Iterator<Item = Walk>, cut: &[(i64, i64)]) -> Result<Walk, ChainReport> {
    let mut chain = Walk {
        last_hash: Some(GENESIS_PREVIOUS_HASH.to_owned()),
        ..Walk::default()
    };
    for (range, (first, _)) in walks.zip(cut) {
        if range.first_previous.is_some() && range.first_previous != chain.last_hash {
            let reason = "previous_hash does not match the previous block's hash".to_owned();
            return Err(chain.report(Some((*first, reason))));
        }
        chain.then(&range);
        if range.invalid.is_some() {
            return Err(chain.report(range.invalid));
        }
    }
    Ok(chain)
}

/// Walks blocks `first..end` in the snapshot `exported`.
async fn walk_in(
    pool: PgPool,
    exported: String,
    authorities: Authorities,
    first: i64,
    end: i64,
) -> anyhow::Result<Walk> {
    let mut range = snapshot(&pool, Some(&exported)).await?;
    walk(&mut range, authorities, first, end).await
}

/// A pooled connection in a read-only repeatable-read transaction: in the
/// snapshot `exported` by another one, or its own. It is closed when
/// dropped, never handed back to the pool: a binary `COPY` cut short (the
/// caller gone mid-walk, a request timeout, a statement the server refused)
/// leaves replies on the wire that sqlx does not expect, and the
/// connection's next user would read them as the answers to its own
/// statements. Closing it ends the transaction, which only read.
async fn snapshot(
    pool: &PgPool,
    exported: Option<&str>,
) -> anyhow::Result<PoolConnection<Postgres>> {
    let mut conn = pool.acquire().await?;
    conn.close_on_drop();
    sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *conn)
        .await?;
    if let Some(id) = exported {
        // The statement takes no parameter; the id is the server's own,
        // checked to be only what a snapshot id is made of.
        anyhow::ensure!(
            !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'),
            "unexpected snapshot id {id:?}"
        );
        // Unnamed, as each id is used once.
        sqlx::query(&format!("SET TRANSACTION SNAPSHOT '{id}'"))
            .persistent(false)
            .execute(&mut *conn)
            .await?;
    }
    // A page's estimated cost passes jit_above_cost, and compiling its plan
    // made each of the first pages three times slower (35 ms, not 12 ms).
    sqlx::query("SET LOCAL jit = off")
        .execute(&mut *conn)
        .await?;
    Ok(conn)
}

/// Ranges walked at once: two per core (while one waits on the database,
/// another hashes), each holding a pooled connection for the whole walk
/// (the first range's is the exporting one), so never more than a quarter
/// of the pool, and one when the pool is smaller than four.
fn parallel_ranges(pool: &PgPool) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let share = usize::try_from(pool.options().get_max_connections() / 4).unwrap_or(1);
    (2 * cores).min(MOST_RANGES).min(share).max(1)
}

/// `blocks` block indexes cut into at most `parts` ranges `[first, end)`.
fn ranges(blocks: i64, parts: usize) -> Vec<(i64, i64)> {
    let parts = i64::try_from(parts.max(1)).unwrap_or(1);
    let size = blocks.saturating_add(parts - 1) / parts;
    (0..parts)
        .map(|k| (k * size, ((k + 1) * size).min(blocks)))
        .filter(|(first, end)| first < end)
        .collect()
}

/// Walks blocks `first..end` page by page; a block short of `end` is missing.
async fn walk(
    conn: &mut PgConnection,
    authorities: Authorities,
    first: i64,
    end: i64,
) -> anyhow::Result<Walk> {
    let mut range = Walk::default();
    let mut expected = first;
    // The binary COPY output of the page being read.
    let mut buffer = Vec::new();
    while expected < end && range.invalid.is_none() {
        let blocks = sqlx::query_as!(
            BlockRow,
            "SELECT block_index, previous_hash, merkle_root, sealed_at, tx_count, sealer, header, block_hash, signature
             FROM blocks WHERE block_index >= $1 AND block_index < $2 ORDER BY block_index LIMIT $3",
            expected,
            end,
            PAGE_BLOCKS
        )
        .fetch_all(&mut *conn)
        .await?;
        let Some(last) = blocks.last().map(|b| b.block_index) else {
            range.invalid = Some((expected, format!("block {expected} is missing")));
            break;
        };
        let (entries, rows) = match read_page(&mut *conn, &mut buffer, &blocks).await? {
            Ok(page) => page,
            Err(unreadable) => {
                range.invalid = Some((expected, unreadable));
                break;
            }
        };
        let previous = range.last_hash.clone();
        let authorities = authorities.clone();
        let page = tokio::task::spawn_blocking(move || {
            let page = Page {
                blocks: &blocks,
                entries: &entries,
                rows: &rows,
            };
            check_page(&page, expected, previous, &authorities)
        })
        .await?;
        if range.first_previous.is_none() {
            range.first_previous.clone_from(&page.first_previous);
        }
        range.then(&page);
        range.invalid = page.invalid;
        expected = last + 1;
    }
    Ok(range)
}

/// The entries of `blocks` (a page, in index order) and the transaction
/// rows they point at; `Ok(Err(reason))` when what is stored cannot be read
/// as the columns the chain is made of (a row tampered with beyond its
/// constraints, a column's type changed), which breaks the chain at the
/// page's first block, as it is not known which block holds the row.
async fn read_page(
    conn: &mut PgConnection,
    buffer: &mut Vec<u8>,
    blocks: &[BlockRow],
) -> sqlx::Result<Result<(Vec<Entry>, Rows), String>> {
    let read = async {
        let entries = entries_of(&mut *conn, buffer, blocks)
            .await
            .map_err(|error| ("entries", error))?;
        let rows = rows_of(&mut *conn, buffer, &entries)
            .await
            .map_err(|error| ("transactions", error))?;
        Ok((entries, rows))
    };
    match read.await {
        Ok(page) => Ok(Ok(page)),
        Err((what, sqlx::Error::Decode(cause))) if cause.is::<binary_copy::Malformed>() => {
            Ok(Err(format!("its {what} cannot be read: {cause}")))
        }
        Err((_, other)) => Err(other),
    }
}

/// One page as read: its blocks, their entries in block and leaf order,
/// and the transaction rows the entries point at.
struct Page<'a> {
    blocks: &'a [BlockRow],
    entries: &'a [Entry],
    rows: &'a Rows,
}

/// Checks one page of blocks, the first expected to be `expected`, whose
/// predecessor's hash is `previous` (`None` at the start of a range: the
/// first block's own `previous_hash` is checked where the ranges meet).
fn check_page(
    &Page {
        blocks,
        entries,
        rows,
    }: &Page<'_>,
    expected: i64,
    previous: Option<String>,
    authorities: &HashMap<String, Option<PublicKey>>,
) -> Walk {
    // A page that does not start where it should reports the missing block,
    // not a broken link.
    let first = blocks.first().filter(|b| b.block_index == expected);
    let mut page = Walk {
        first_previous: first.map(|b| b.previous_hash.clone()),
        ..Walk::default()
    };
    let mut previous_hash = previous
        .or_else(|| page.first_previous.clone())
        .unwrap_or_default();
    // Everything but the signatures, block by block up to the first failure.
    let mut signed: Vec<Signed<'_>> = Vec::with_capacity(blocks.len());
    let mut leaf_counts = Vec::with_capacity(blocks.len());
    for (block, index) in blocks.iter().zip(expected..) {
        if block.block_index != index {
            page.invalid = Some((index, format!("block {index} is missing")));
            break;
        }
        let here = entries.partition_point(|e| e.block_index < index);
        let count = entries[here..].partition_point(|e| e.block_index == index);
        let leaves = &entries[here..here + count];
        match check_block(block, leaves, rows, &previous_hash, authorities) {
            Ok((key, hash)) => signed.push((key, hash, block.signature.as_str())),
            Err(reason) => {
                page.invalid = Some((index, reason));
                break;
            }
        }
        previous_hash.clone_from(&block.block_hash);
        leaf_counts.push(leaves.len() as i64);
    }
    // Then the signatures of the blocks that passed, together; a block whose
    // signature fails comes before any failure found above.
    let valid = if verify_all(&signed) {
        signed.len()
    } else {
        signed
            .iter()
            .position(|(key, hash, signature)| !verify_with(key, hash, signature))
            .unwrap_or(signed.len())
    };
    if let Some(block) = blocks.get(valid).filter(|_| valid < signed.len()) {
        let reason = format!("the signature of {} does not verify", block.sealer);
        page.invalid = Some((block.block_index, reason));
    }
    page.blocks_checked = valid as i64;
    page.transactions_checked = leaf_counts[..valid].iter().sum();
    page.last_hash = valid
        .checked_sub(1)
        .map(|last| blocks[last].block_hash.clone());
    page
}

/// Checks one block against its predecessor's hash, its rebuilt leaves and
/// its header; `Err` says what is wrong, `Ok` is the key its signature must
/// verify under and the hash it signs (signatures are checked a page at a
/// time).
fn check_block(
    block: &BlockRow,
    leaves: &[Entry],
    rows: &Rows,
    previous_hash: &str,
    authorities: &HashMap<String, Option<PublicKey>>,
) -> Result<(PublicKey, [u8; 32]), String> {
    if block.previous_hash != previous_hash {
        return Err("previous_hash does not match the previous block's hash".into());
    }
    if leaves.len() != usize::try_from(block.tx_count).unwrap_or(usize::MAX) {
        return Err(format!(
            "the block says {} transactions but has {}",
            block.tx_count,
            leaves.len()
        ));
    }
    let hashes = rebuilt_leaves(leaves, rows)?;
    if !stored_as(block.merkle_root.as_bytes(), &merkle::root(&hashes)) {
        return Err("the Merkle root does not match the block's transactions".into());
    }
    let header = BlockHeader {
        index: block.block_index,
        previous_hash: block.previous_hash.clone(),
        merkle_root: block.merkle_root.clone(),
        timestamp: block.sealed_at,
        tx_count: block.tx_count,
        sealer: block.sealer.clone(),
    };
    let block_hash = header.hash();
    if header.canonical() != block.header || hex::encode(block_hash) != block.block_hash {
        return Err("the block hash does not match its header".into());
    }
    let key = authorities
        .get(&block.sealer)
        .and_then(Option::as_ref)
        .ok_or_else(|| {
            format!(
                "{} is not a sealing authority enrolled under this master key",
                block.sealer
            )
        })?;
    Ok((*key, block_hash))
}

/// Whether `stored` is exactly `hash` as the sealer wrote it: lower-case hex
/// (what receipts and proofs hand out, and compare as text).
fn stored_as(stored: &[u8], hash: &merkle::Hash) -> bool {
    let mut written = [0u8; 64];
    hex::encode_to_slice(hash, &mut written).is_ok() && stored == written
}

/// Each leaf rebuilt from its transaction row, checked against the stored hash.
fn rebuilt_leaves(leaves: &[Entry], rows: &Rows) -> Result<Vec<merkle::Hash>, String> {
    let mut hashes = Vec::with_capacity(leaves.len());
    let mut leaf = Vec::with_capacity(256);
    for (position, entry) in leaves.iter().enumerate() {
        if usize::try_from(entry.leaf_index).ok() != Some(position) {
            return Err(format!("leaf {position} is missing"));
        }
        let Some(row) = rows.get(entry.tx_seq) else {
            return Err(format!("transaction {} is missing", entry.tx_id));
        };
        // The row was found by sequence number: it must be the entry's own.
        if row.tx_id != entry.tx_id {
            return Err(format!(
                "transaction {} does not match its leaf",
                entry.tx_id
            ));
        }
        leaf.clear();
        row.write_leaf(&mut leaf)
            .map_err(|e| format!("transaction {}: {e}", entry.tx_id))?;
        let rebuilt = merkle::leaf_hash(&leaf);
        let matches = entry.leaf_hash.as_ref();
        if !matches.is_some_and(|stored| stored_as(stored, &rebuilt)) {
            return Err(format!(
                "transaction {} does not match its leaf",
                entry.tx_id
            ));
        }
        hashes.push(rebuilt);
    }
    Ok(hashes)
}

/// After the last block: an entry of a block that does not exist, or a
/// transaction in no block and not queued, is a break in the chain.
///
/// The walk proved every entry of blocks `0..next_index` to be a distinct
/// transaction's own row; the queue is counted only where its rows name a
/// transaction, and none may also be sealed. So when, in one snapshot, no
/// entry lies outside `0..next_index` and the counts add up, every
/// transaction is in one or the other, without reading the foreign keys'
/// word for it (they can be switched off). Counting reads three indexes;
/// the anti-join that names a stray transaction builds a hash of every
/// sealed one, so it only runs when the counts say there is one to name.
async fn stray_transactions(
    conn: &mut PgConnection,
    next_index: i64,
) -> anyhow::Result<Option<(i64, String)>> {
    let tally = sqlx::query!(
        r#"SELECT (SELECT min(block_index) FROM block_entries
                   WHERE block_index < 0 OR block_index >= $1) AS orphan,
                  (SELECT count(*) FROM transactions)
                  - (SELECT count(*) FROM block_entries WHERE block_index >= 0 AND block_index < $1)
                  - (SELECT count(*) FROM chain_pending p JOIN transactions t ON t.tx_id = p.tx_id)
                  AS "unaccounted!",
                  (SELECT p.tx_id FROM chain_pending p JOIN block_entries e ON e.tx_id = p.tx_id
                   LIMIT 1) AS twice"#,
        next_index
    )
    .fetch_one(&mut *conn)
    .await?;
    if let Some(orphan) = tally.orphan {
        return Ok(Some(if orphan < 0 {
            let reason = format!("an entry names block {orphan}, which cannot exist");
            (next_index, reason)
        } else {
            (orphan, format!("block {orphan} is missing"))
        }));
    }
    if let Some(tx_id) = tally.twice {
        let reason = format!("transaction {tx_id} is both in a block and queued");
        return Ok(Some((next_index, reason)));
    }
    if tally.unaccounted == 0 {
        return Ok(None);
    }
    let unchained = sqlx::query_scalar!(
        "SELECT t.tx_id FROM transactions t
         WHERE NOT EXISTS (SELECT 1 FROM block_entries e WHERE e.tx_id = t.tx_id)
           AND NOT EXISTS (SELECT 1 FROM chain_pending p WHERE p.tx_id = t.tx_id)
         LIMIT 1"
    )
    .fetch_optional(conn)
    .await?;
    let reason = unchained.map_or_else(
        || {
            format!(
                "{} transactions are in no block and not queued",
                tally.unaccounted
            )
        },
        |tx_id| format!("transaction {tx_id} is in no block and not queued"),
    );
    Ok(Some((next_index, reason)))
}

/// The entries of `blocks` (a page, in index order), in block and leaf
/// order, read as binary COPY (a million entries are read in validating a
/// million transactions; the statement's numbers are integers of this
/// walk's own). No more are read than the blocks say they hold and one: a
/// block given extra entries is found by its count, and a page's memory
/// does not grow with them.
async fn entries_of(
    conn: &mut PgConnection,
    buffer: &mut Vec<u8>,
    blocks: &[BlockRow],
) -> sqlx::Result<Vec<Entry>> {
    let (Some(first), Some(last)) = (blocks.first(), blocks.last()) else {
        return Ok(Vec::new());
    };
    let (first, last) = (first.block_index, last.block_index);
    let most = blocks.iter().fold(1i64, |sum, b| {
        sum.saturating_add(i64::from(b.tx_count.max(0)))
    });
    let statement = format!(
        "COPY (SELECT block_index, leaf_index, tx_id, tx_seq, leaf_hash
               FROM block_entries WHERE block_index BETWEEN {first} AND {last}
               ORDER BY block_index, leaf_index LIMIT {most}) TO STDOUT (FORMAT binary)"
    );
    binary_copy::read_all(conn, &statement, buffer).await?;
    let mut tuples = Tuples::new(buffer, 5)?;
    let mut entries = Vec::new();
    while let Some(mut fields) = tuples.next_tuple()? {
        entries.push(Entry {
            block_index: fields.read()?,
            leaf_index: fields.read()?,
            tx_id: fields.read()?,
            tx_seq: fields.read()?,
            leaf_hash: fields.read::<&str>()?.as_bytes().try_into().ok(),
        });
        fields.finish()?;
    }
    Ok(entries)
}

/// The widest gap between two entries' sequence numbers read through
/// rather than skipped (its rows belong to other pages' blocks).
const MOST_READ_THROUGH: i64 = 64;

/// The sequence numbers of `entries` as few ascending runs `[low, high]`:
/// the sealer takes transactions in sequence order, so a page's entries
/// are one run but for the odd transaction that committed late. Gaps are
/// read through only while the rows in them stay fewer than the entries
/// and 64 more, so a page reads at most twice its own rows and 64 more
/// however its sequence numbers are spread.
fn runs(entries: &[Entry]) -> (Vec<i64>, Vec<i64>) {
    let mut seqs: Vec<i64> = entries.iter().map(|e| e.tx_seq).collect();
    seqs.sort_unstable();
    let mut spare = i64::try_from(seqs.len())
        .unwrap_or(i64::MAX)
        .saturating_add(MOST_READ_THROUGH);
    let (mut lows, mut highs) = (Vec::new(), Vec::<i64>::new());
    for seq in seqs {
        if let Some(high) = highs.last_mut() {
            let between = seq.saturating_sub(*high).saturating_sub(1).max(0);
            if between <= MOST_READ_THROUGH.min(spare) {
                spare -= between;
                *high = seq;
                continue;
            }
        }
        lows.push(seq);
        highs.push(seq);
    }
    (lows, highs)
}

/// The transaction rows of `entries`, read as ranges of the sequence index
/// (a page's ten thousand leaves cost one descent, not one each: half the
/// database's time of a probe per leaf) in binary COPY, the ranges' bounds
/// written into the statement as integer literals. `OFFSET 0` keeps each
/// range an index scan inside the loop over the runs, where the planner
/// would otherwise hash-join the whole table. A row found is not trusted to
/// be the right one: the leaf is rebuilt from it, its id included.
async fn rows_of(
    conn: &mut PgConnection,
    buffer: &mut Vec<u8>,
    entries: &[Entry],
) -> sqlx::Result<Rows> {
    let (lows, highs) = runs(entries);
    if lows.is_empty() {
        return Ok(Rows(Vec::new()));
    }
    let list = |values: &[i64]| {
        let written: Vec<String> = values.iter().map(i64::to_string).collect();
        written.join(",")
    };
    let statement = format!(
        "COPY (SELECT t.seq, t.tx_id, t.tx_type, t.amount, t.fee, t.currency, t.from_user_id,
                      t.to_user_id, t.created_at, t.to_currency, t.converted_amount,
                      trim_scale(t.rate)::text
               FROM unnest('{{{}}}'::int8[], '{{{}}}'::int8[]) AS r(low, high)
               CROSS JOIN LATERAL (SELECT * FROM transactions t
                                   WHERE t.seq BETWEEN r.low AND r.high OFFSET 0) t)
         TO STDOUT (FORMAT binary)",
        list(&lows),
        list(&highs)
    );
    binary_copy::read_all(conn, &statement, buffer).await?;
    let mut tuples = Tuples::new(buffer, 12)?;
    let mut rows = Vec::with_capacity(entries.len());
    while let Some(mut fields) = tuples.next_tuple()? {
        rows.push((fields.read()?, leaf_row(&mut fields)?));
        fields.finish()?;
    }
    // In order already, run after run; sorting checks it in one pass.
    rows.sort_unstable_by_key(|(seq, _)| *seq);
    Ok(Rows(rows))
}

/// A transaction's leaf columns, in the order `rows_of` selects them.
fn leaf_row(fields: &mut Fields<'_>) -> Result<LeafRow, binary_copy::Malformed> {
    let owned = |text: Option<&str>| text.map(str::to_owned);
    Ok(LeafRow {
        tx_id: fields.read()?,
        tx_type: fields.read::<&str>()?.to_owned(),
        amount: fields.read()?,
        fee: fields.read()?,
        currency: fields.read::<&str>()?.to_owned(),
        from_user_id: fields.read()?,
        to_user_id: fields.read()?,
        created_at: fields.read()?,
        to_currency: owned(fields.read()?),
        converted_amount: fields.read()?,
        rate: owned(fields.read()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_every_block_once_in_order() {
        for blocks in [0, 1, 2, 3, 7, 200, 201, 20_001] {
            for parts in 1..=9 {
                let cut = ranges(blocks, parts);
                assert!(cut.len() <= parts);
                let mut next = 0;
                for (first, end) in cut {
                    assert_eq!(first, next, "{blocks} blocks in {parts}");
                    assert!(first < end);
                    next = end;
                }
                assert_eq!(next, blocks, "{blocks} blocks in {parts}");
            }
        }
    }

    fn entries(seqs: &[i64]) -> Vec<Entry> {
        let entry = |&tx_seq| Entry {
            block_index: 0,
            leaf_index: 0,
            tx_id: Uuid::nil(),
            tx_seq,
            leaf_hash: None,
        };
        seqs.iter().map(entry).collect()
    }

    #[test]
    fn a_pages_sequence_numbers_are_read_as_few_runs() {
        let far = MOST_READ_THROUGH + 1;
        // A gap of exactly the most read through is read through, a wider
        // one starts a run of its own; duplicates and the ends of i64 hold.
        let seqs = [
            105,
            101,
            102,
            103,
            104,
            104,
            9,
            106 + far,
            105 + far,
            107 + 2 * far,
            i64::MAX,
        ];
        let (lows, highs) = runs(&entries(&seqs));
        assert_eq!(lows, [9, 101, 107 + 2 * far, i64::MAX]);
        assert_eq!(highs, [9, 106 + far, 107 + 2 * far, i64::MAX]);
        assert_eq!(runs(&[]), (vec![], vec![]));
    }

    #[test]
    fn a_page_spread_thin_reads_at_most_twice_its_rows_and_a_gap() {
        let spread: Vec<i64> = (0..1_000).map(|k| k * MOST_READ_THROUGH).collect();
        let (lows, highs) = runs(&entries(&spread));
        let read: i64 = lows.iter().zip(&highs).map(|(l, h)| h - l + 1).sum();
        assert!(
            read <= 2 * 1_000 + MOST_READ_THROUGH,
            "{read} rows read for 1,000 entries"
        );
        assert!(lows.len() < 1_000, "some gaps are still read through");
    }

    #[test]
    fn only_the_lower_case_hex_the_sealer_wrote_matches() {
        let hash = merkle::leaf_hash(b"leaf");
        let written = hex::encode(hash);
        assert!(stored_as(written.as_bytes(), &hash));
        assert!(!stored_as(written.to_uppercase().as_bytes(), &hash));
        assert!(!stored_as(&written.as_bytes()[..63], &hash));
        assert!(!stored_as(
            hex::encode(merkle::leaf_hash(b"other")).as_bytes(),
            &hash
        ));
    }
}
