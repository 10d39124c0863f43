// convert_resnet.hpp (private) — model file conversion that other modules call
// without seeing dlib's network templates (they live in one translation unit,
// dnn_nets.cpp, because they are slow to compile). Used by models/download.cpp
// when it installs the face-api.js copy of the ResNet.
//
// convert_faceapi_resnet() builds dlib's 29-layer ResNet face descriptor
// network (the net of dlib_face_recognition_resnet_model_v1.dat) from
// face-api.js's copy of its weights: the weights manifest JSON and the
// concatenated binary (`face_recognition_model-weights_manifest.json`,
// `face_recognition_model.bin` in the @vladmandic/face-api npm package), and
// serializes it to `out_dat` atomically. uint8-quantized tensors are
// dequantized (value = min + scale * byte).
//
// Errors: Error{invalid_input} when the manifest or binary does not match the
// network (tensor count, names, shapes, byte count); Error{io} on write.
#pragma once

#include <cstddef>
#include <filesystem>

namespace faceq {

struct ConversionReport {
    std::size_t tensors = 0;     // tensors read from the manifest (117)
    std::size_t bytes = 0;       // bytes consumed from the .bin (6,444,032)
    std::size_t parameters = 0;  // float parameters written into the dlib net
};

ConversionReport convert_faceapi_resnet(const std::filesystem::path& manifest_json,
                                        const std::filesystem::path& weights_bin, const std::filesystem::path& out_dat);

}  // namespace faceq
