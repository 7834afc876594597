nas::nas_search! {
    search S {
        hardware: [h100],
        known a { hidden_dim: 2048, heads: 16, kv_heads: 2, head_dim: 128, ffn_dim: 8192 }
        space wide top 10 {
            hidden_dim: [2048 as "a_very_long_label_that_repeats_a_very_long_label_that_repeats", 4096],
            head_dim: [128],
            ffn_ratio: [4.0 as "another_very_long_label_another_very_long_label_another_very_long_label", 3.0],
            window: [512 as "window_label_window_label_window_label_window_label_window_label", full],
            qk_norm: [true as "qk_norm_label_qk_norm_label_qk_norm_label_qk_norm_label_qk_norm", false],
            name: "w_{hidden_dim}_{ffn_ratio}_{window}_{qk_norm}_{hidden_dim}",
        }
    }
}

fn main() {}
