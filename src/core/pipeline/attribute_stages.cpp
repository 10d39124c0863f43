// attribute_stages.cpp — the attribute stages (see stages.hpp): age (and
// gender) from the deployed age/gender head, and the CC0 gender CNN on its
// own 32x32 chips.
#include "pipeline/stages.hpp"

namespace faceq::detail {

void apply_head(const AgeGenderHead& head, bool head_gender, bool keep_features, std::vector<Face>& faces) {
    for (auto& face : faces) {
        const AttributePrediction p = head.predict(face.features);
        face.age = p.age;
        if (head_gender && p.p_male) {
            face.gender = *p.p_male >= 0.5 ? "male" : "female";
            face.gender_confidence = *p.p_male >= 0.5 ? *p.p_male : 1.0 - *p.p_male;
        }
        if (!keep_features) face.features.clear();
    }
}

void GenderClassifier::classify(const OriginalImage& image, const FaceShapes& shapes, std::vector<Face>& faces) {
    // dlib-models' gender CNN: 32x32 chips with get_face_chip_details'
    // default padding, as it was trained.
    const auto p = net_.p_male(cut_chips(image, shapes, ChipGeometry{GenderNet::chip_size, 0.2}));
    for (std::size_t i = 0; i < p.size(); ++i) {
        faces[i].gender = p[i] >= 0.5f ? "male" : "female";
        faces[i].gender_confidence = p[i] >= 0.5f ? p[i] : 1.0f - p[i];
    }
}

}  // namespace faceq::detail
