"""Label ontology: coverage of real label lists, normalisation, context-dependent names, structure."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from medglip.ontology import (
    LEVELS, Ontology, OntologyError, Resolution, UnknownTermError, load_ontology, name_key,
)

# TotalSegmentator v2 `total` task, the 117 class names in order (totalsegmentator/map_to_binary.py).
TOTALSEG_V2 = """
spleen kidney_right kidney_left gallbladder liver stomach pancreas adrenal_gland_right adrenal_gland_left
lung_upper_lobe_left lung_lower_lobe_left lung_upper_lobe_right lung_middle_lobe_right lung_lower_lobe_right
esophagus trachea thyroid_gland small_bowel duodenum colon urinary_bladder prostate kidney_cyst_left
kidney_cyst_right sacrum vertebrae_S1 vertebrae_L5 vertebrae_L4 vertebrae_L3 vertebrae_L2 vertebrae_L1
vertebrae_T12 vertebrae_T11 vertebrae_T10 vertebrae_T9 vertebrae_T8 vertebrae_T7 vertebrae_T6 vertebrae_T5
vertebrae_T4 vertebrae_T3 vertebrae_T2 vertebrae_T1 vertebrae_C7 vertebrae_C6 vertebrae_C5 vertebrae_C4
vertebrae_C3 vertebrae_C2 vertebrae_C1 heart aorta pulmonary_vein brachiocephalic_trunk subclavian_artery_right
subclavian_artery_left common_carotid_artery_right common_carotid_artery_left brachiocephalic_vein_left
brachiocephalic_vein_right atrial_appendage_left superior_vena_cava inferior_vena_cava
portal_vein_and_splenic_vein iliac_artery_left iliac_artery_right iliac_vena_left iliac_vena_right humerus_left
humerus_right scapula_left scapula_right clavicula_left clavicula_right femur_left femur_right hip_left hip_right
spinal_cord gluteus_maximus_left gluteus_maximus_right gluteus_medius_left gluteus_medius_right
gluteus_minimus_left gluteus_minimus_right autochthon_left autochthon_right iliopsoas_left iliopsoas_right brain
skull rib_left_1 rib_left_2 rib_left_3 rib_left_4 rib_left_5 rib_left_6 rib_left_7 rib_left_8 rib_left_9
rib_left_10 rib_left_11 rib_left_12 rib_right_1 rib_right_2 rib_right_3 rib_right_4 rib_right_5 rib_right_6
rib_right_7 rib_right_8 rib_right_9 rib_right_10 rib_right_11 rib_right_12 sternum costal_cartilages
""".split()

# Names of TotalSegmentator v1 / total_mr / other tasks that are not in the v2 `total` list.
TOTALSEG_OTHER = """
heart_myocardium heart_atrium_left heart_ventricle_left heart_atrium_right heart_ventricle_right pulmonary_artery
face lung_left lung_right vertebrae intervertebral_discs lung_vessels lung_trachea_bronchia lung_covid_infiltrate
intracerebral_hemorrhage hip_implant coronary_arteries body_trunc body_extremities pleural_effusion
pericardial_effusion liver_vessels liver_tumor vertebrae_body patella tibia fibula tarsal metatarsal
phalanges_feet ulna radius carpal metacarpal phalanges_hand subcutaneous_fat torso_fat skeletal_muscle
intermuscular_fat brainstem subarachnoid_space venous_sinuses septum_pellucidum cerebellum caudate_nucleus
lentiform_nucleus insular_cortex internal_capsule ventricle central_sulcus frontal_lobe parietal_lobe
occipital_lobe temporal_lobe thalamus eye_left eye_lens_right optic_nerve_left parotid_gland_right
submandibular_gland_left nasopharynx oropharynx hypopharynx nasal_cavity_right auditory_canal_left soft_palate
hard_palate larynx_air thyroid_cartilage hyoid cricoid_cartilage zygomatic_arch_right styloid_process_left
internal_carotid_artery_right internal_jugular_vein_left masseter_right temporalis_left tongue
sternocleidomastoid_right trapezius_left quadriceps_femoris_left thigh_medial_compartment_right
thigh_posterior_compartment_left sartorius_right
""".split()

# AAL (v1, Tzourio-Mazoyer 2002): the 116 region names.
AAL1 = """
Precentral_L Precentral_R Frontal_Sup_L Frontal_Sup_R Frontal_Sup_Orb_L Frontal_Sup_Orb_R Frontal_Mid_L
Frontal_Mid_R Frontal_Mid_Orb_L Frontal_Mid_Orb_R Frontal_Inf_Oper_L Frontal_Inf_Oper_R Frontal_Inf_Tri_L
Frontal_Inf_Tri_R Frontal_Inf_Orb_L Frontal_Inf_Orb_R Rolandic_Oper_L Rolandic_Oper_R Supp_Motor_Area_L
Supp_Motor_Area_R Olfactory_L Olfactory_R Frontal_Sup_Medial_L Frontal_Sup_Medial_R Frontal_Med_Orb_L
Frontal_Med_Orb_R Rectus_L Rectus_R Insula_L Insula_R Cingulum_Ant_L Cingulum_Ant_R Cingulum_Mid_L
Cingulum_Mid_R Cingulum_Post_L Cingulum_Post_R Hippocampus_L Hippocampus_R ParaHippocampal_L ParaHippocampal_R
Amygdala_L Amygdala_R Calcarine_L Calcarine_R Cuneus_L Cuneus_R Lingual_L Lingual_R Occipital_Sup_L
Occipital_Sup_R Occipital_Mid_L Occipital_Mid_R Occipital_Inf_L Occipital_Inf_R Fusiform_L Fusiform_R
Postcentral_L Postcentral_R Parietal_Sup_L Parietal_Sup_R Parietal_Inf_L Parietal_Inf_R SupraMarginal_L
SupraMarginal_R Angular_L Angular_R Precuneus_L Precuneus_R Paracentral_Lobule_L Paracentral_Lobule_R
Caudate_L Caudate_R Putamen_L Putamen_R Pallidum_L Pallidum_R Thalamus_L Thalamus_R Heschl_L Heschl_R
Temporal_Sup_L Temporal_Sup_R Temporal_Pole_Sup_L Temporal_Pole_Sup_R Temporal_Mid_L Temporal_Mid_R
Temporal_Pole_Mid_L Temporal_Pole_Mid_R Temporal_Inf_L Temporal_Inf_R Cerebelum_Crus1_L Cerebelum_Crus1_R
Cerebelum_Crus2_L Cerebelum_Crus2_R Cerebelum_3_L Cerebelum_3_R Cerebelum_4_5_L Cerebelum_4_5_R Cerebelum_6_L
Cerebelum_6_R Cerebelum_7b_L Cerebelum_7b_R Cerebelum_8_L Cerebelum_8_R Cerebelum_9_L Cerebelum_9_R
Cerebelum_10_L Cerebelum_10_R Vermis_1_2 Vermis_3 Vermis_4_5 Vermis_6 Vermis_7 Vermis_8 Vermis_9 Vermis_10
""".split()

# AAL3 names that differ from AAL1 (Rolls et al. 2020).
AAL3_NEW = """
Frontal_Sup_2_L Frontal_Sup_2_R Frontal_Mid_2_L Frontal_Mid_2_R Frontal_Inf_Orb_2_L Frontal_Inf_Orb_2_R
OFCmed_L OFCmed_R OFCant_L OFCant_R OFCpost_L OFCpost_R OFClat_L OFClat_R Cingulate_Ant_L Cingulate_Ant_R
Cingulate_Mid_L Cingulate_Mid_R Cingulate_Post_L Cingulate_Post_R Cerebellum_Crus1_L Cerebellum_Crus1_R
Cerebellum_4_5_L Cerebellum_10_R Thal_AV_L Thal_AV_R Thal_LP_L Thal_LP_R Thal_VA_L Thal_VA_R Thal_VL_L
Thal_VL_R Thal_VPL_L Thal_VPL_R Thal_IL_L Thal_IL_R Thal_Re_L Thal_Re_R Thal_MDm_L Thal_MDm_R Thal_MDl_L
Thal_MDl_R Thal_LGN_L Thal_LGN_R Thal_MGN_L Thal_MGN_R Thal_PuI_L Thal_PuI_R Thal_PuM_L Thal_PuM_R Thal_PuA_L
Thal_PuA_R Thal_PuL_L Thal_PuL_R ACC_sub_L ACC_sub_R ACC_pre_L ACC_pre_R ACC_sup_L ACC_sup_R N_Acc_L N_Acc_R
VTA_L VTA_R SN_pc_L SN_pc_R SN_pr_L SN_pr_R Red_N_L Red_N_R LC_L LC_R Raphe_D Raphe_M
""".split()

FREESURFER = {
    "Left-Hippocampus": "left hippocampus", "Right-Amygdala": "right amygdala",
    "Left-Cerebral-White-Matter": "left cerebral white matter", "Right-Lateral-Ventricle": "right lateral ventricle",
    "Left-Thalamus-Proper": "left thalamus", "Left-Cerebellum-Cortex": "left cerebellar cortex",
    "Right-Accumbens-area": "right nucleus accumbens", "Left-VentralDC": "left ventral diencephalon",
    "3rd-Ventricle": "third ventricle", "4th-Ventricle": "fourth ventricle", "Brain-Stem": "brainstem",
    "CSF": "cerebrospinal fluid", "Left-Inf-Lat-Vent": "left inferior lateral ventricle",
    "WM-hypointensities": "white matter hyperintensity", "lh.hippocampus": "left hippocampus",
    "rh.hippocampus": "right hippocampus",
}


@pytest.fixture(scope="module")
def onto() -> Ontology:
    return load_ontology()


def _expected_side(name: str) -> str | None:
    words = name.lower().split("_")
    return "left" if "left" in words else "right" if "right" in words else None


def test_totalsegmentator_v2_all_mapped_with_laterality(onto):
    assert len(TOTALSEG_V2) == 117 and len(set(TOTALSEG_V2)) == 117
    res = onto.resolve_labels(TOTALSEG_V2, source="TotalSegmentator", modality="CT")
    unmapped = [r.source_name for r in res if not r.mapped]
    assert not unmapped, unmapped
    wrong = [(r.source_name, r.laterality) for r in res if r.laterality != _expected_side(r.source_name)]
    assert not wrong, wrong
    phrases = Counter(r.phrase for r in res)
    assert max(phrases.values()) == 1, [p for p, c in phrases.items() if c > 1]  # no two labels merged
    assert all(not r.phrase.startswith(("left left", "right right")) for r in res)


@pytest.mark.parametrize("name,phrase,parent", [
    ("gluteus_maximus_left", "left gluteus maximus", "left gluteal muscles"),
    ("kidney_right", "right kidney", "abdomen"),
    ("lung_upper_lobe_left", "left upper lobe", "left lung"),
    ("lung_middle_lobe_right", "right middle lobe", "right lung"),
    ("vertebrae_L5", "L5 vertebra", "lumbar spine"),
    ("vertebrae_S1", "S1 vertebra", "sacrum"),
    ("rib_left_3", "left 3rd rib", "left rib"),
    ("rib_right_12", "right 12th rib", "right rib"),
    ("kidney_cyst_left", "left kidney cyst", "left kidney"),
    ("atrial_appendage_left", "left atrial appendage", "left atrium"),
    ("iliac_vena_right", "right iliac vein", "pelvis"),
    ("clavicula_left", "left clavicle", "musculoskeletal system"),
    ("hip_left", "left hip bone", "musculoskeletal system"),
    ("portal_vein_and_splenic_vein", "portal and splenic vein", "abdomen"),
    ("costal_cartilages", "costal cartilage", "rib cage"),
    ("heart_atrium_left", "left atrium", "heart"),
])
def test_totalsegmentator_phrases(onto, name, phrase, parent):
    r = onto.resolve(name, source="TotalSegmentator", modality="CT")
    assert (r.phrase, r.parent) == (phrase, parent)
    assert r.hierarchy[-1] == phrase and r.parent in r.hierarchy


def test_totalsegmentator_other_tasks_mapped(onto):
    unmapped = [n for n in TOTALSEG_OTHER if not onto.resolve(n, source="TotalSegmentator").mapped]
    assert not unmapped, unmapped


@pytest.mark.parametrize("names", [AAL1, AAL3_NEW], ids=["aal1", "aal3"])
def test_aal_regions_resolve_with_side(onto, names):
    if names is AAL1:
        assert len(AAL1) == 116 and len(set(AAL1)) == 116
    res = [onto.resolve(n, source="AAL") for n in names]
    assert not [r.source_name for r in res if not r.mapped]
    for r in res:
        suffix = r.source_name.rsplit("_", 1)[-1]
        expected = {"L": "left", "R": "right"}.get(suffix)
        assert r.laterality == expected, (r.source_name, r.laterality)
        assert r.region == "head and neck" and r.ct_window_name == "brain"
    assert len({r.phrase for r in res}) == len(res)  # no two atlas regions merged


def test_aal_examples(onto):
    assert onto.resolve("Frontal_Sup_2_R").phrase == "right superior frontal gyrus"
    assert onto.resolve("Cerebellum_Crus1_R").phrase == "right cerebellar crus 1"
    assert onto.resolve("Vermis_4_5").phrase == "vermis lobules 4 and 5"
    assert onto.resolve("Thal_VPL_L").phrase == "left ventral posterolateral thalamic nucleus"
    assert onto.resolve("Thal_VPL_L").parent == "left thalamus"
    assert onto.resolve("ParaHippocampal_R").phrase == "right parahippocampal gyrus"


@pytest.mark.parametrize("name,phrase", sorted(FREESURFER.items()))
def test_freesurfer_style_names(onto, name, phrase):
    assert onto.resolve(name).phrase == phrase


@pytest.mark.parametrize("source,labels,expected", [
    ("Task01_BrainTumour", ["edema", "non-enhancing tumor", "enhancing tumour"],
     ["peritumoral edema", "non-enhancing tumor", "enhancing tumor"]),
    ("Task02_Heart", ["left atrium"], ["left atrium"]),
    ("Task03_Liver", ["liver", "cancer"], ["liver", "liver tumor"]),
    ("Task04_Hippocampus", ["Anterior", "Posterior"], ["anterior hippocampus", "posterior hippocampus"]),
    ("Task05_Prostate", ["PZ", "TZ"], ["peripheral zone", "transition zone"]),
    ("Task06_Lung", ["cancer"], ["lung tumor"]),
    ("Task07_Pancreas", ["pancreas", "cancer"], ["pancreas", "pancreatic tumor"]),
    ("Task08_HepaticVessel", ["Vessel", "Tumour"], ["hepatic vessel", "liver tumor"]),
    ("Task09_Spleen", ["spleen"], ["spleen"]),
    ("Task10_Colon", ["colon cancer primaries"], ["colon cancer"]),
    ("Dataset003_Liver", ["liver", "cancer"], ["liver", "liver tumor"]),
    ("MSD Liver", ["cancer"], ["liver tumor"]),
    ("Dataset220_KiTS2023", ["kidney", "tumor", "cyst"], ["kidney", "kidney tumor", "kidney cyst"]),
    ("HECKTOR2022", ["GTVp", "GTVn"], ["head and neck tumor", "lymph node metastasis"]),
    ("COVID-19-CT-Seg", ["left lung", "right lung", "infection"], ["left lung", "right lung", "covid-19 infection"]),
])
def test_msd_and_challenge_labels(onto, source, labels, expected):
    res = onto.resolve_labels(labels, source=source)
    assert [r.phrase for r in res] == expected
    assert all(r.mapped for r in res)


@pytest.mark.parametrize("name,phrase", [
    ("NCR/NET", "necrotic and non-enhancing tumor core"), ("NCR", "necrotic tumor core"),
    ("necrotic tumor core", "necrotic tumor core"), ("ED", "peritumoral edema"),
    ("peritumoral edema", "peritumoral edema"), ("ET", "enhancing tumor"), ("enhancing tumor", "enhancing tumor"),
    ("TC", "tumor core"), ("tumor core", "tumor core"), ("WT", "brain tumor"), ("whole tumor", "brain tumor"),
    ("RC", "resection cavity"), ("resection cavity", "resection cavity"), ("NETC", "non-enhancing tumor"),
    ("SNFH", "peritumoral edema"), ("edema", "peritumoral edema"),
])
def test_brats_labels(onto, name, phrase):
    r = onto.resolve(name, source="BraTS2021", modality="MRI")
    assert r.phrase == phrase and r.region == "head and neck" and r.level == "lesion"


@pytest.mark.parametrize("source,modality,name,phrase", [
    ("Kvasir-SEG", "ENDO", "polyp", "polyp"), ("CVC-ClinicDB", "ENDO", "polyp", "polyp"),
    ("kvasir-seg", "ENDO", "mask", "polyp"),
    ("ISIC2018", "DERM", "lesion", "skin lesion"), ("ISIC2017", "DERM", "melanoma", "melanoma"),
    ("ISIC2017", "DERM", "nevus", "nevus"), ("ISIC2017", "DERM", "seborrheic_keratosis", "seborrheic keratosis"),
    ("ISIC2019", "DERM", "MEL", "melanoma"), ("ISIC2019", "DERM", "BCC", "basal cell carcinoma"),
    ("BUSI", "US", "benign", "benign breast lesion"), ("BUSI", "US", "malignant", "malignant breast lesion"),
    ("MoNuSeg", "PATH", "nucleus", "cell nucleus"), ("MoNuSeg", "PATH", "nuclei", "cell nucleus"),
    ("PanNuke", "PATH", "Neoplastic", "neoplastic nucleus"), ("PanNuke", "PATH", "Inflammatory", "inflammatory nucleus"),
    ("PanNuke", "PATH", "Epithelial", "epithelial nucleus"), ("PanNuke", "PATH", "Connective", "connective tissue nucleus"),
    ("PanNuke", "PATH", "Dead", "dead cell nucleus"),
    (None, "DERM", "lesion", "skin lesion"), (None, "US", "malignant", "malignant breast lesion"),
    (None, "PATH", "neoplastic", "neoplastic nucleus"),
])
def test_2d_lesion_datasets(onto, source, modality, name, phrase):
    r = onto.resolve(name, source=source, modality=modality)
    assert r.mapped and r.phrase == phrase


@pytest.mark.parametrize("name,phrase", [
    ("lung tumor", "lung tumor"), ("lung_nodule", "lung nodule"), ("brain tumour", "brain tumor"),
    ("liver_tumor", "liver tumor"), ("kidney tumor", "kidney tumor"), ("pancreatic tumour", "pancreatic tumor"),
    ("COVID-19 infection", "covid-19 infection"), ("lung_covid_infiltrate", "covid-19 infection"),
    ("pleural_effusion", "pleural effusion"), ("pneumothorax", "pneumothorax"), ("thyroid nodule", "thyroid nodule"),
    ("optic disc", "optic disc"), ("optic cup", "optic cup"), ("prostate lesion", "prostate lesion"),
    ("gray matter", "gray matter"), ("grey matter", "gray matter"), ("white matter", "white matter"),
    ("CSF", "cerebrospinal fluid"), ("brain", "brain"), ("GTVp", "primary tumor"), ("GTVn", "lymph node metastasis"),
    ("IVC", "inferior vena cava"), ("SVC", "superior vena cava"), ("LA", "left atrium"),
    ("oesophagus", "esophagus"), ("Kidney_R", "right kidney"), ("kidney_left", "left kidney"),
    ("Right Kidney", "right kidney"), ("KidneyLeft", "left kidney"), ("L_kidney", "left kidney"),
    ("kidneys", "kidney"), ("Lung Nodules", "lung nodule"), ("GluteusMaximus_R", "right gluteus maximus"),
    ("metastases", "metastasis"), ("bilateral lungs", "bilateral lung"),
])
def test_normalisation(onto, name, phrase):
    r = onto.resolve(name)
    assert r.mapped and r.phrase == phrase


def test_conflicting_cancer_by_source(onto):
    liver = onto.resolve("cancer", source="Task03_Liver")
    pancreas = onto.resolve("cancer", source="Task07_Pancreas")
    assert (liver.phrase, pancreas.phrase) == ("liver tumor", "pancreatic tumor")
    assert liver.via == pancreas.via == "source"
    assert liver.class_name == "liver lesion" and pancreas.class_name == "pancreatic lesion"
    assert liver.ct_window_name == "liver" and liver.ct_window == (-45.0, 105.0)


def test_context_resolves_generic_words(onto):
    assert onto.resolve("tumor", context=("kidney", "tumor")).phrase == "kidney tumor"
    assert onto.resolve("Tumour", context=("liver",)).phrase == "liver tumor"
    assert onto.resolve("cancer", context=("pancreas", "cancer")).phrase == "pancreatic tumor"
    assert onto.resolve("lesion", context=("liver",)).phrase == "liver tumor"  # lesion falls back to tumor
    assert onto.resolve("tumor", context=("kidney_left",)).phrase == "left kidney tumor"
    assert onto.resolve("tumor", context=("kidney_left", "kidney_right")).phrase == "kidney tumor"
    assert onto.resolve("Anterior", context=("hippocampus",)).phrase == "anterior hippocampus"
    assert onto.resolve("vessel", context=("liver",)).phrase == "hepatic vessel"
    assert onto.resolve("edema", context=("non-enhancing tumor",)).phrase == "peritumoral edema"
    generic = onto.resolve("tumor")
    assert (generic.phrase, generic.via, generic.mapped) == ("tumor", "generic", True)
    assert onto.resolve("tumor", context=("liver", "kidney")).phrase == "tumor"  # ambiguous
    assert onto.resolve("mass", context=("weird",)).phrase == "tumor"


def test_unknown_names_are_kept_and_reported():
    onto = load_ontology().with_mappings({})  # fresh copy: its own unmapped counter
    r = onto.resolve("weird_label_3", source="X")
    assert (r.mapped, r.phrase, r.class_name, r.level, r.term_id) == (False, "weird label 3", "unmapped", "unknown", None)
    assert r.source_name == "weird_label_3" and r.hierarchy == ("weird label 3",)
    onto.resolve("weird_label_3", source="X")
    onto.resolve("WeirdThing")
    assert onto.unmapped == {("X", "weird_label_3"): 2, (None, "WeirdThing"): 1}
    assert onto.unmapped_report()[0] == {"source": "X", "name": "weird_label_3", "phrase": "weird label 3", "count": 2}
    for odd in ("", "___", "123", "left", "L", "Anterior"):
        assert isinstance(onto.resolve(odd), Resolution)
    onto.clear_unmapped()
    assert onto.unmapped == {}


def test_user_mappings(tmp_path):
    base = load_ontology()
    onto = base.with_mappings({"MyLiverSet": {"blob": "liver tumor", "cancer": "hepatocellular carcinoma"}})
    assert onto.resolve("blob", source="Dataset042_MyLiverSet").phrase == "liver tumor"
    assert onto.resolve("cancer", source="MyLiverSet").phrase == "hepatocellular carcinoma"
    assert onto.resolve("cancer", source="Task03_Liver").phrase == "liver tumor"
    assert onto.resolve("blob_left", source="MyLiverSet").via == "user"
    assert not base.resolve("blob", source="MyLiverSet").mapped  # the shared default is unchanged
    star = base.with_mappings({"*": {"thing": "spleen"}})
    assert star.resolve("thing").phrase == "spleen"
    f = tmp_path / "map.yaml"
    f.write_text("sources:\n  - match: [foo]\n    names: {bar: left kidney}\n")
    r = load_ontology(mappings=f).resolve("bar", source="foo")
    assert (r.phrase, r.laterality) == ("left kidney", "left")
    with pytest.raises(OntologyError, match="not a term"):
        base.with_mappings({"x": {"a": "no such organ"}})


def test_flip_laterality(onto):
    assert onto.flip_laterality("left kidney") == "right kidney"
    assert onto.flip_laterality("Left upper lobe") == "Right upper lobe"
    assert onto.flip_laterality("liver") == "liver"
    for r in onto.resolve_labels(TOTALSEG_V2) + [onto.resolve(n) for n in AAL1]:
        flipped = onto.flip_laterality(r.phrase)
        assert onto.flip_laterality(flipped) == r.phrase
        if r.laterality in ("left", "right") and onto.can_flip(r.phrase):
            back = onto.resolve(flipped)
            assert back.mapped and (back.term_id == r.term_id or onto.term(back.term_id).mirror == r.term_id)
            assert back.laterality == {"left": "right", "right": "left"}[r.laterality]
    # fixed-side terms without a mirror image: the left lung has no middle lobe
    cannot = {r.phrase for r in onto.resolve_labels(TOTALSEG_V2 + AAL1) if not onto.can_flip(r.phrase)}
    assert cannot == {"right middle lobe", "left atrial appendage"}
    with pytest.raises(OntologyError):
        onto.flip_laterality("right middle lobe", strict=True)


def test_structure(onto):
    terms = {t.id: t for t in onto.terms}
    region_ids = {r.id for r in onto.regions}
    assert len(onto.regions) == 6
    assert len(onto.fine_terms) >= 200
    assert 38 <= len(onto.classes) <= 45
    assert all(c.region in region_ids for c in onto.classes)
    assert all(t.level in LEVELS for t in terms.values())
    rank = {lvl: i for i, lvl in enumerate(LEVELS)}
    for t in terms.values():
        seen = {t.id}
        cur = t
        while cur.parent is not None:
            assert cur.parent in terms, (t.id, cur.parent)
            parent = terms[cur.parent]
            assert parent.id not in seen, f"cycle at {t.id}"
            assert rank[parent.level] <= rank[cur.level]
            seen.add(parent.id)
            cur = parent
        assert cur.level == "region" and cur.id == t.region
        assert t.ct_window in onto.ct_windows
        assert t.name == t.name.strip() and t.name.lower() == t.name or t.name.endswith(" vertebra")
        if t.level != "region":
            assert t.class_name in {c.name for c in onto.classes}
    assert onto.ct_windows["lung"] == (-1350, 150) and onto.ct_windows["soft_tissue"] == (-160, 240)
    assert onto.ct_windows["brain"] == (0, 80) and onto.ct_windows["bone"] == (-450, 1050)


def test_hierarchy_chains(onto):
    for name in TOTALSEG_V2 + AAL1 + ["cancer", "ET", "polyp", "melanoma", "neoplastic nucleus"]:
        r = onto.resolve(name, source="Task03_Liver")
        assert r.hierarchy[0] == r.region and r.hierarchy[-1] == r.phrase
        assert r.parent == r.hierarchy[-2]
        assert r.region in {g.name for g in onto.regions}


def test_term_api(onto):
    kidney = onto.term("left kidney")
    assert kidney.id == "kidney" and kidney.lateral and onto.term("kidney") is kidney
    assert "renal" in onto.synonyms("kidney")
    assert {c.name for c in onto.children("lung")} >= {"right upper lobe", "left lower lobe", "lung nodule"}
    assert onto.parent("gluteus maximus").name == "gluteal muscles"
    with pytest.raises(UnknownTermError):
        onto.term("no such thing")
    json.dumps(onto.to_json())
    assert name_key("Enhancing Tumour") == "enhancing tumor"


def test_find_phrases(onto):
    text = "Is there a tumor in the left lung?"
    found = onto.find_phrases(text)
    assert [(text[s:e], r.phrase, r.laterality) for (s, e), r in found] == [
        ("tumor", "tumor", None), ("left lung", "left lung", "left")]
    text = "Bilateral pleural effusions; nodule in the right upper lobe and the liver. ET is visible."
    got = [r.phrase for _, r in onto.find_phrases(text)]
    assert got == ["bilateral pleural effusion", "nodule", "right upper lobe", "liver", "enhancing tumor"]
    assert onto.find_phrases("Where is it? And what is the size of the image?") == []
    got = [(r.phrase, r.laterality) for _, r in onto.find_phrases("Left adrenal gland, right hip; et al.")]
    assert got == [("left adrenal gland", "left"), ("right hip bone", "right")]


def test_custom_ontology_errors(tmp_path):
    core = ("ct_windows: {soft_tissue: [-160, 240]}\n"
            "regions: [{id: abdomen, name: abdomen}]\n"
            "classes: [{name: organ, region: abdomen}]\n")
    ok = tmp_path / "ok.yaml"
    ok.write_text(core + "groups: [{class: organ, terms: [{name: liver}, {name: liver lobe, parent: liver, level: substructure}]}]\n")
    small = load_ontology(ok)
    assert small.resolve("Liver").hierarchy == ("abdomen", "liver") and len(small.fine_terms) == 2
    more = tmp_path / "more.yaml"
    more.write_text("groups: [{class: kidney and adrenal lesion, level: lesion, parent: kidney, lateral: true, "
                    "terms: [{name: renal angiomyolipoma, synonyms: [aml]}]}]\n"
                    "sources: [{match: [mykidney], names: {blob: renal angiomyolipoma}}]\n")
    extended = load_ontology(extra=[more])
    r = extended.resolve("blob_R", source="Dataset001_MyKidney")
    assert (r.phrase, r.parent, r.via) == ("right renal angiomyolipoma", "right kidney", "source")
    assert len(extended.fine_terms) == len(load_ontology().fine_terms) + 1
    for body, msg in [
        ("groups: [{class: organ, terms: [{name: a, parent: nothing}]}]\n", "unknown parent"),
        ("groups: [{class: organ, terms: [{name: a, parent: b}, {name: b, parent: a}]}]\n", "cycle"),
        ("groups: [{class: organ, terms: [{name: a, level: tissue}]}]\n", "level"),
        ("groups: [{class: organ, terms: [{name: a, synonyms: [x]}, {name: b, synonyms: [x]}]}]\n", "used by both"),
        ("groups: [{class: nope, terms: [a]}]\n", "unknown class"),
    ]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(core + body)
        with pytest.raises(OntologyError, match=msg):
            load_ontology(bad)
