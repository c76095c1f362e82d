// native/src/ref/sparse_matmul.cpp: placeholder, being written.
#include <sharpinfer/sharpinfer.h>
