// The generated header compiles as C++17, links without name mangling and
// its enums and structs are usable from C++.
#include <cmath>
#include <cstring>
#include <vector>

#include "check.h"

int main() {
    std::vector<float> x(64), y(64);
    for (std::size_t i = 0; i < x.size(); i++) x[i] = static_cast<float>(i % 7) - 3.0f;
    CHECK_STATUS(mlak_softmax_f32(x.data(), 64, y.data(), 64, 1, 64, 1.0f), MLAK_STATUS_OK);
    double sum = 0.0;
    for (float v : y) sum += v;
    CHECK(std::fabs(sum - 1.0) < 1e-5, "softmax sums to %g", sum);

    mlak_status s = mlak_softmax_f32(x.data(), 64, y.data(), 64, 1, -1, 1.0f);
    CHECK(s == MLAK_STATUS_INVALID_ARGUMENT, "status %d", static_cast<int>(s));
    CHECK(std::strstr(mlak_last_error(), "n = -1") != nullptr, "message: %s", mlak_last_error());

    mlak_confidence c{};
    CHECK_STATUS(mlak_confidence_f32(x.data(), 64, 1, 64, 1.0f, &c), MLAK_STATUS_OK);
    CHECK(c.max_prob > 0.0f, "max_prob %g", c.max_prob);
    CHECK(c.max_prob <= 1.0f, "max_prob %g", c.max_prob);
    CHECK(mlak_version() != nullptr, "version");
    return check_summary("test_header_cpp");
}
