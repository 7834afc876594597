nas::nas_search! {
    search S {
        hardware: [h100],
        constraints { hidden_dim >= 2048 }
    }
}

fn main() {}
