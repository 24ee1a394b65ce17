// Tammes problem for 12 points: place 12 points on the unit sphere so that the smallest distance between
// two of them is as large as possible. The program prints one point a line, "x y z", on stdout.

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn add_scaled(a: [f64; 3], b: [f64; 3], s: f64) -> [f64; 3] {
    [a[0] + s * b[0], a[1] + s * b[1], a[2] + s * b[2]]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn normalize(a: [f64; 3]) -> [f64; 3] {
    let length = dot(a, a).sqrt();
    [a[0] / length, a[1] / length, a[2] / length]
}

// EVOLVE-BLOCK-START
// A Fibonacci spiral, then a few steps of repulsion (force 1/d^3 along the chord), projected back onto the
// sphere after each step.
fn place(n: usize) -> Vec<[f64; 3]> {
    let golden_angle = 2.399_963_229_728_653_f64;
    let mut points: Vec<[f64; 3]> = (0..n)
        .map(|i| {
            let z = 1.0 - 2.0 * (i as f64 + 0.5) / n as f64;
            let r = (1.0 - z * z).sqrt();
            let t = golden_angle * i as f64;
            [r * t.cos(), r * t.sin(), z]
        })
        .collect();
    let mut step = 0.01_f64;
    for _ in 0..40 {
        let mut forces = vec![[0.0_f64; 3]; n];
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    let d = sub(points[i], points[j]);
                    let len2 = dot(d, d).max(1e-12);
                    forces[i] = add_scaled(forces[i], d, 1.0 / (len2 * len2.sqrt()));
                }
            }
        }
        for i in 0..n {
            points[i] = normalize(add_scaled(points[i], forces[i], step));
        }
        step *= 0.95;
    }
    points
}
// EVOLVE-BLOCK-END

fn main() {
    for p in place(12) {
        println!("{:.17} {:.17} {:.17}", p[0], p[1], p[2]);
    }
}
