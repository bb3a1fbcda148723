//! Per-tensor type choice against llama.cpp's `llama_model_quantize`
//! (goldens/mix/llamacpp.json, from tools/goldens/quantize_llamacpp.py): for every
//! model and mix, the tensors come out in llama.cpp's order with its types and
//! fallback count. The models are only described (names, shapes), so no model file
//! is needed: SmolLM2 (576-wide rows, the K-quant fallbacks), a 256-divisible
//! llama with GQA 4 and an untied output, an 8-expert MoE, and one whose FFN fits
//! no block (F16 fallbacks); with --pure, the imatrix-dependent rules and the
//! output / token-embedding overrides.

use quantize::GgmlType;
use quantize::gguf::TensorInfo;
use quantize::mix::{Mix, MixOptions, ModelParams, plan};
use serde_json::Value;

fn golden() -> Value {
    let text = include_str!("goldens/mix/llamacpp.json");
    serde_json::from_str(text).expect("the golden is JSON")
}

fn model_params(model: &Value) -> ModelParams {
    let h = &model["hparams"];
    let int = |k: &str| h[k].as_u64().unwrap_or_else(|| panic!("hparams.{k}")) as u32;
    ModelParams {
        arch: h["arch"].as_str().expect("arch").to_owned(),
        n_layer: int("n_layer"),
        n_head: int("n_head"),
        n_head_kv: int("n_head_kv"),
        n_expert: int("n_expert"),
    }
}

fn tensors(model: &Value) -> Vec<TensorInfo> {
    let list = model["tensors"].as_array().expect("tensors");
    list.iter()
        .map(|t| TensorInfo {
            name: t[0].as_str().expect("name").to_owned(),
            shape: t[1]
                .as_array()
                .expect("shape")
                .iter()
                .map(|d| d.as_u64().expect("dim"))
                .collect(),
            ggml_type: GgmlType::from_name(t[2].as_str().expect("type")).expect("known type"),
            offset: 0,
        })
        .collect()
}

fn ggml_type(run: &Value, key: &str) -> Option<GgmlType> {
    run[key]
        .as_str()
        .map(|name| GgmlType::from_name(name).expect("known type"))
}

fn options(run: &Value) -> MixOptions {
    let mix: Mix = run["mix"]
        .as_str()
        .expect("mix")
        .parse()
        .expect("a decant mix");
    MixOptions {
        mix,
        pure: run["pure"].as_bool().unwrap_or(false),
        has_imatrix: run["imatrix"].as_bool().unwrap_or(false),
        output_type: ggml_type(run, "output_tensor_type"),
        token_embedding_type: ggml_type(run, "token_embedding_type"),
    }
}

#[test]
fn every_mix_chooses_llama_cpp_types() {
    let golden = golden();
    let mut checked = 0;
    for (model_name, model) in golden["models"].as_object().expect("models") {
        let params = model_params(model);
        let tensors = tensors(model);
        let order: Vec<&str> = model["output_order"]
            .as_array()
            .expect("order")
            .iter()
            .map(|n| n.as_str().expect("name"))
            .collect();
        for (run_name, run) in model["runs"].as_object().expect("runs") {
            let what = format!("{model_name} {run_name}");
            let plan =
                plan(&tensors, &params, &options(run)).unwrap_or_else(|e| panic!("{what}: {e}"));
            let names: Vec<&str> = plan
                .tensors
                .iter()
                .map(|t| tensors[t.index].name.as_str())
                .collect();
            assert_eq!(names, order, "{what}: tensor order");
            let expected = run["types"].as_array().expect("types");
            for (planned, want) in plan.tensors.iter().zip(expected) {
                assert_eq!(
                    planned.target.name(),
                    want.as_str().expect("type"),
                    "{what}: type of {}",
                    tensors[planned.index].name
                );
            }
            assert_eq!(
                plan.n_fallback as u64,
                run["n_fallback"].as_u64().expect("n_fallback"),
                "{what}: fallbacks"
            );
            checked += 1;
        }
    }
    assert!(checked >= 80, "only {checked} runs in the golden");
}

#[test]
fn q2_k_s_without_imatrix_names_the_tensor() {
    let golden = golden();
    let model = &golden["models"]["tiny"];
    let err = plan(
        &tensors(model),
        &model_params(model),
        &MixOptions::new(Mix::Q2KS),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("blk.0.") && text.contains("q2_K") && text.contains("--imatrix"),
        "{text}"
    );
}

#[test]
fn expert_tensors_need_a_layer_in_their_name() {
    let golden = golden();
    let model = &golden["models"]["moe"];
    let mut tensors = tensors(model);
    let down = tensors
        .iter_mut()
        .find(|t| t.name.contains("ffn_down_exps"))
        .expect("an expert tensor");
    down.name = "blk.9.ffn_down_exps.weight".into();
    let err = plan(&tensors, &model_params(model), &MixOptions::new(Mix::Q4KM)).unwrap_err();
    assert!(
        err.to_string().contains("'blk.9.ffn_down_exps.weight'"),
        "{err}"
    );
}
