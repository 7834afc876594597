nas::nas_search! {
    struct S {}
}

fn main() {}
