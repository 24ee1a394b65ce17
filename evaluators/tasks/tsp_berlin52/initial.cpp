// Travelling salesman: berlin52 of TSPLIB (52 locations in Berlin). The program prints a tour: the 52
// city indices 0 to 51, each exactly once, separated by whitespace, on stdout. A trusted scorer checks it
// and measures it with TSPLIB's distance (each edge's Euclidean length rounded to the nearest integer).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

static const int N = 52;
static const double X[N] = {
    565, 25, 345, 945, 845, 880, 25, 525, 580, 650, 1605, 1220, 1465, 1530, 845, 725, 145, 415, 510,
    560, 300, 520, 480, 835, 975, 1215, 1320, 1250, 660, 410, 420, 575, 1150, 700, 685, 685, 770,
    795, 720, 760, 475, 95, 875, 700, 555, 830, 1170, 830, 605, 595, 1340, 1740
};
static const double Y[N] = {
    575, 185, 750, 685, 655, 660, 230, 1000, 1175, 1130, 620, 580, 200, 5, 680, 370, 665, 635, 875,
    365, 465, 585, 415, 625, 580, 245, 315, 400, 180, 250, 555, 665, 1160, 580, 595, 610, 610, 645,
    635, 650, 960, 260, 920, 500, 815, 485, 65, 610, 625, 360, 725, 245
};

// TSPLIB's EUC_2D distance between cities a and b
static int dist(int a, int b) {
    double dx = X[a] - X[b], dy = Y[a] - Y[b];
    return (int)(std::sqrt(dx * dx + dy * dy) + 0.5);
}

// EVOLVE-BLOCK-START
// A nearest-neighbour tour from city 0, then simulated annealing over 2-opt moves (reverse a segment).
std::vector<int> solve() {
    std::mt19937 rng(12345);
    std::vector<int> tour(1, 0);
    std::vector<bool> used(N, false);
    used[0] = true;
    while ((int)tour.size() < N) {
        int last = tour.back(), next = -1;
        for (int c = 0; c < N; ++c)
            if (!used[c] && (next < 0 || dist(last, c) < dist(last, next))) next = c;
        used[next] = true;
        tour.push_back(next);
    }
    std::vector<int> best = tour;
    long length = 0, best_length;
    for (int i = 0; i < N; ++i) length += dist(tour[i], tour[(i + 1) % N]);
    best_length = length;
    double temperature = 40.0;
    const double cooling = 0.9990;
    const int steps = 6000;
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    for (int step = 0; step < steps; ++step) {
        int i = 1 + (int)(rng() % (N - 1)), j = 1 + (int)(rng() % (N - 1));
        if (i > j) std::swap(i, j);
        if (i == j) continue;
        int a = tour[i - 1], b = tour[i], c = tour[j], d = tour[(j + 1) % N];
        long delta = dist(a, c) + dist(b, d) - dist(a, b) - dist(c, d);
        if (delta < 0 || uniform(rng) < std::exp(-delta / temperature)) {
            std::reverse(tour.begin() + i, tour.begin() + j + 1);
            length += delta;
            if (length < best_length) {
                best_length = length;
                best = tour;
            }
        }
        temperature *= cooling;
    }
    return best;
}
// EVOLVE-BLOCK-END

int main() {
    std::vector<int> tour = solve();
    for (int i = 0; i < (int)tour.size(); ++i) std::printf("%d%c", tour[i], i + 1 < (int)tour.size() ? ' ' : '\n');
    return 0;
}
