//! The chain explorer: newest blocks, a block's page, and a transaction's
//! inclusion proof verified here in the browser with core's code (RFC 9162
//! with SHA3-256, then the sealer's Ed25519 signature against the published
//! authorities), naming the step that fails.

use chainpay_core::chain::receipt::{self, Receipt, Step};
use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

use crate::api::{self, ApiResult, Authorities, Block, BlockList, ChainStats, Proof};
use crate::session::Auth;
use crate::widgets::{link, loaded, outcome, short, when};

#[component]
pub fn ChainPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let sealed = RwSignal::new(0usize);
    let stats = LocalResource::new(move || {
        sealed.track();
        api::get::<ChainStats>(auth, "/blockchain/stats")
    });
    let blocks = LocalResource::new(move || {
        sealed.track();
        api::get::<BlockList>(auth, "/blockchain/blocks?n=20")
    });
    let mine = Action::new_local(move |_: &()| async move {
        let done: ApiResult<serde_json::Value> =
            api::post(auth, "/blockchain/mine", serde_json::json!({})).await;
        sealed.update(|n| *n += 1);
        done
    });
    view! {
        <h1>"Chain explorer"</h1>
        {loaded(stats, |s: ChainStats| view! {
            <p class="summary">{format!("{} blocks, {} transactions sealed, {} pending.", s.height, s.transactions, s.pending)}</p>
            <p class="mono">"Head: " {s.head_hash.unwrap_or_default()}</p>
        })}
        <button id="mine" on:click=move |_| { mine.dispatch(()); }>"Seal pending transactions now"</button>
        {outcome(mine.value(), "Sealed.")}
        {loaded(blocks, |list: BlockList| view! {
            <table class="blocks">
                <thead><tr><th>"Block"</th><th>"Sealed"</th><th>"Transactions"</th><th>"Sealer"</th><th>"Hash"</th></tr></thead>
                <tbody>{list.blocks.into_iter().map(|b| view! {
                    <tr>
                        <td><A href=link(&format!("/chain/blocks/{}", b.index))>{format!("#{}", b.index)}</A></td>
                        <td>{when(&b.timestamp)}</td>
                        <td>{b.tx_count}</td>
                        <td>{b.sealer}</td>
                        <td class="mono">{short(&b.block_hash)}</td>
                    </tr>
                }).collect_view()}</tbody>
            </table>
        })}
    }
}

#[component]
pub fn BlockPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let params = use_params_map();
    let block = LocalResource::new(move || {
        let index = params.read().get("index").unwrap_or_default();
        async move { api::get::<Block>(auth, &format!("/blockchain/blocks/{index}")).await }
    });
    view! {
        {loaded(block, |b: Block| view! {
            <h1>{format!("Block #{}", b.index)}</h1>
            <dl class="facts">
                <dt>"Sealed"</dt><dd>{when(&b.timestamp)}</dd>
                <dt>"Sealer"</dt><dd>{b.sealer.clone()}</dd>
                <dt>"Previous hash"</dt><dd class="mono">{b.previous_hash.clone()}</dd>
                <dt>"Merkle root"</dt><dd class="mono">{b.merkle_root.clone()}</dd>
                <dt>"Block hash"</dt><dd class="mono">{b.block_hash.clone()}</dd>
                <dt>"Signature"</dt><dd class="mono">{b.signature.clone()}</dd>
                <dt>"Header"</dt><dd class="mono">{b.header.clone()}</dd>
            </dl>
            <h2>{format!("{} leaves", b.tx_count)}</h2>
            {match b.transactions.filter(|leaves| !leaves.is_empty()) {
                None => view! { <p class="empty">"No transactions (genesis)."</p> }.into_any(),
                Some(leaves) => view! {
                    <table class="leaves"><thead><tr><th>"#"</th><th>"Leaf hash"</th><th>"Transaction"</th></tr></thead>
                    <tbody>{leaves.into_iter().enumerate().map(|(i, leaf)| view! {
                        <tr>
                            <td>{i}</td>
                            <td class="mono">{leaf.leaf_hash}</td>
                            <td>{leaf.tx_id.map(|tx| view! {
                                <A href=link(&format!("/chain/proof/{tx}"))>{format!("{} — verify", short(&tx))}</A>
                            })}</td>
                        </tr>
                    }).collect_view()}</tbody></table>
                }.into_any(),
            }}
        })}
    }
}

/// What verifying a proof needs: the proof, its block and the authorities.
#[derive(Clone)]
struct Evidence {
    proof: Proof,
    block: Block,
    sealer_key: Option<String>,
}

async fn evidence(auth: Auth, tx_id: String) -> ApiResult<Evidence> {
    let proof: Proof = api::get(auth, &format!("/blockchain/proof/{tx_id}")).await?;
    let block: Block = api::get(auth, &format!("/blockchain/blocks/{}", proof.block_index)).await?;
    let authorities: Authorities = api::get(auth, "/blockchain/authorities").await?;
    let sealer_key = authorities
        .authorities
        .into_iter()
        .find(|a| a.name == block.sealer)
        .map(|a| a.public_key);
    Ok(Evidence {
        proof,
        block,
        sealer_key,
    })
}

fn check(evidence: &Evidence, leaf: &str) -> Vec<(Step, bool)> {
    let (proof, block) = (&evidence.proof, &evidence.block);
    let key = evidence.sealer_key.clone().unwrap_or_default();
    receipt::verify(&Receipt {
        leaf,
        leaf_hash: &proof.leaf_hash,
        leaf_index: proof.leaf_index,
        tree_size: proof.tree_size,
        audit_path: &proof.audit_path,
        header: &block.header,
        block_hash: &block.block_hash,
        signature: &block.signature,
        sealer_key: &key,
    })
}

#[component]
pub fn ProofPage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let params = use_params_map();
    let found = LocalResource::new(move || {
        let tx_id = params.read().get("tx_id").unwrap_or_default();
        evidence(auth, tx_id)
    });
    view! {
        <h1>"Inclusion proof"</h1>
        {loaded(found, |evidence: Evidence| view! { <Verifier evidence/> })}
    }
}

#[component]
fn Verifier(evidence: Evidence) -> impl IntoView {
    let leaf = RwSignal::new(evidence.proof.leaf.clone());
    let steps = RwSignal::new(check(&evidence, &evidence.proof.leaf));
    let again = {
        let evidence = evidence.clone();
        move |_| steps.set(check(&evidence, &leaf.get_untracked()))
    };
    let p = evidence.proof.clone();
    view! {
        <dl class="facts">
            <dt>"Transaction"</dt><dd class="mono"><A href=link(&format!("/transactions/{}", p.tx_id))>{p.tx_id.clone()}</A></dd>
            <dt>"Block"</dt><dd><A href=link(&format!("/chain/blocks/{}", p.block_index))>{format!("#{}", p.block_index)}</A></dd>
            <dt>"Leaf"</dt><dd>{format!("{} of {}", p.leaf_index, p.tree_size)}</dd>
            <dt>"Sealer's key"</dt><dd class="mono">{evidence.sealer_key.clone().unwrap_or_else(|| "not published".into())}</dd>
        </dl>
        <label class="field wide"><span>"Leaf (the canonical transaction bytes; edit it to see verification fail)"</span>
            <textarea id="leaf" prop:value=move || leaf.get() on:input:target=move |ev| leaf.set(ev.target().value())></textarea>
        </label>
        <button id="verify-proof" on:click=again>"Verify in the browser"</button>
        {move || {
            let steps = steps.get();
            let verdict = if receipt::verified(&steps) {
                view! { <p class="done" id="proof-verdict">"Verified: every step holds."</p> }.into_any()
            } else {
                let failed = steps.iter().find(|(_, ok)| !ok).map(|(s, _)| s.describe()).unwrap_or_default();
                view! { <p class="problem" id="proof-verdict">{format!("Not verified: it fails where {failed}.")}</p> }.into_any()
            };
            view! {
                {verdict}
                <ol class="steps">{steps.into_iter().map(|(step, ok)| view! {
                    <li class=if ok { "pass" } else { "fail" }>{if ok { "✓ " } else { "✗ " }}{step.describe()}</li>
                }).collect_view()}</ol>
            }
        }}
    }
}
