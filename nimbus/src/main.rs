fn main() {
    println!("not built yet");
}
