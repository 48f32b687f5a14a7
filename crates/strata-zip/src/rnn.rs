//! TEMPORARY STUB (replaced by the real module).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    Lstm,
    Gru,
}
#[derive(Clone, Debug, PartialEq)]
pub struct RnnSpec {
    pub cell: Cell,
    pub layers: u32,
    pub hidden: u32,
    pub symbols: u32,
    pub bptt: u32,
    pub lr: f32,
    pub seed: u64,
}
pub struct Rnn {
    p: Vec<f32>,
}
impl Rnn {
    pub fn new(spec: &RnnSpec) -> Rnn {
        Rnn {
            p: vec![1.0 / spec.symbols as f32; spec.symbols as usize],
        }
    }
    pub fn probs(&self) -> &[f32] {
        &self.p
    }
    pub fn update(&mut self, _symbol: u32) {}
}
