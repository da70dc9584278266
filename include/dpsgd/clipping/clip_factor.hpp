// Former name of clip_method.hpp (ClipMethod and clip_factor), kept so that existing includes compile.
#pragma once

#include "dpsgd/clipping/clip_method.hpp"
