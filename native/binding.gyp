{
  "targets": [
    {
      "target_name": "vgl_torch",
      "sources": ["addon.cc", "ops.cc", "distributed.cc"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node config.cjs include)"
      ],
      "libraries": ["<!@(node config.cjs libs)"],
      "defines": ["NAPI_CPP_EXCEPTIONS", "NAPI_VERSION=8", "<!@(node config.cjs defines)"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-O2", "-fexceptions", "-frtti", "-Wno-unused-parameter", "-Wno-deprecated-declarations"]
    }
  ]
}
