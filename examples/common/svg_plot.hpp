// A small SVG line chart writer for the example's training curves (no plotting dependency).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

namespace dpsgd_example {

struct Series {
  std::string title;   // panel title
  std::string colour;  // stroke colour
  std::vector<double> x, y;
};

// Stacks one panel per series, sharing the x axis label; each panel has its own y range and ticks.
inline std::string svg_line_charts(const std::vector<Series>& panels, const std::string& x_label) {
  const double width = 720, panel_height = 260, left = 70, right = 20, top = 36, bottom = 46;
  std::ostringstream svg;
  svg << "<svg xmlns='http://www.w3.org/2000/svg' width='" << width << "' height='" << panel_height * panels.size()
      << "' font-family='sans-serif' font-size='12'>\n<rect width='100%' height='100%' fill='white'/>\n";
  for (std::size_t p = 0; p < panels.size(); ++p) {
    const Series& s = panels[p];
    const double y0 = p * panel_height;
    const double plot_w = width - left - right, plot_h = panel_height - top - bottom;
    double x_min = s.x.empty() ? 0 : *std::min_element(s.x.begin(), s.x.end());
    double x_max = s.x.empty() ? 1 : *std::max_element(s.x.begin(), s.x.end());
    double y_min = s.y.empty() ? 0 : *std::min_element(s.y.begin(), s.y.end());
    double y_max = s.y.empty() ? 1 : *std::max_element(s.y.begin(), s.y.end());
    if (x_max <= x_min) x_max = x_min + 1;
    if (y_max <= y_min) y_max = y_min + 1;
    const double pad = 0.05 * (y_max - y_min);
    y_min -= pad;
    y_max += pad;
    const auto px = [&](double x) { return left + (x - x_min) / (x_max - x_min) * plot_w; };
    const auto py = [&](double y) { return y0 + top + (1 - (y - y_min) / (y_max - y_min)) * plot_h; };
    svg << "<text x='" << width / 2 << "' y='" << y0 + 22 << "' text-anchor='middle' font-size='15'>" << s.title
        << "</text>\n";
    svg << "<rect x='" << left << "' y='" << y0 + top << "' width='" << plot_w << "' height='" << plot_h
        << "' fill='none' stroke='#444'/>\n";
    char label[64];
    for (int t = 0; t <= 4; ++t) {
      const double yv = y_min + (y_max - y_min) * t / 4.0, xv = x_min + (x_max - x_min) * t / 4.0;
      std::snprintf(label, sizeof(label), "%.3g", yv);
      svg << "<line x1='" << left - 4 << "' x2='" << left + plot_w << "' y1='" << py(yv) << "' y2='" << py(yv)
          << "' stroke='#ddd'/><text x='" << left - 8 << "' y='" << py(yv) + 4 << "' text-anchor='end'>" << label
          << "</text>\n";
      std::snprintf(label, sizeof(label), "%.0f", xv);
      svg << "<text x='" << px(xv) << "' y='" << y0 + top + plot_h + 16 << "' text-anchor='middle'>" << label
          << "</text>\n";
    }
    svg << "<text x='" << left + plot_w / 2 << "' y='" << y0 + panel_height - 8 << "' text-anchor='middle'>" << x_label
        << "</text>\n<polyline fill='none' stroke='" << s.colour << "' stroke-width='2' points='";
    for (std::size_t i = 0; i < s.x.size(); ++i) svg << px(s.x[i]) << "," << py(s.y[i]) << " ";
    svg << "'/>\n";
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      svg << "<circle cx='" << px(s.x[i]) << "' cy='" << py(s.y[i]) << "' r='2.5' fill='" << s.colour << "'/>\n";
    }
  }
  svg << "</svg>\n";
  return svg.str();
}

}  // namespace dpsgd_example
