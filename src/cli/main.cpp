// build/bin/dpsgd: the accountant on the command line; everything but argv handling is in cli.cpp.
#include <iostream>
#include <string>
#include <vector>

#include "cli.hpp"

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  return dpsgd::cli::run(args, std::cout, std::cerr);
}
